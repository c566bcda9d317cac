#include "db/message_store.h"

#include <chrono>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "log.h"
#include "queue_id.h"
#include "pg/auth_users.h"
#include "pg/body.h"
#include "pg/connection.h"
#include "pg/directory.h"
#include "pg/shards.h"
#include "pg/sql_util.h"
#include "pg/transitions.h"
#include "pg/waiter.h"
#include "db/wakeup.h"
#include "password.h"

namespace wsmtp::common::pg {
namespace {

// The shard a store works on, and whom it tells when the shard fails.
struct ShardLink {
  DatabaseConfig database;
  ShardConfig shard;
  ShardLost lost;
  std::shared_ptr<ShardEpoch> epoch;  // never null
};

class PgStore final : public Store {
 public:
  PgStore(std::string conninfo, std::shared_ptr<WakeupSender> waker, std::optional<ShardLink> shard)
      : conninfo_(std::move(conninfo)), waker_(std::move(waker)), shard_(std::move(shard)) {}

  RecipientVerdict check_recipient(const std::string& address, const std::string& domain) override {
    return without_tx([&](pqxx::nontransaction& tx) { return pg::check_recipient(tx, address, domain); });
  }

  std::uint64_t queue_size() override {
    return without_tx([&](pqxx::nontransaction& tx) {
      return tx.exec1("SELECT pg_database_size(current_database())")[0].as<std::uint64_t>();
    });
  }

  // A sequential scan of a table about as big as the set of keys with mail
  // waiting (the reaper folds it, schema 020); at most once a second.
  // With other shards' keys (`also`), those keys are counted whatever their
  // total here (backlog_watch.cpp).
  std::vector<std::pair<std::string, std::uint64_t>> backlogs_at_least(std::uint64_t threshold,
                                                                       const std::vector<std::string>& also) override {
    return without_tx([&](pqxx::nontransaction& tx) {
      std::vector<std::pair<std::string, std::uint64_t>> out;
      auto rows = also.empty()
                      ? tx.exec_params("SELECT key, sum(n) FROM backlog_counts GROUP BY key HAVING sum(n) >= $1",
                                       static_cast<std::int64_t>(threshold))
                      : tx.exec_params(
                            "SELECT key, sum(n) FROM backlog_counts GROUP BY key "
                            "HAVING sum(n) >= $1 OR (key = ANY($2::text[]) AND sum(n) > 0)",
                            static_cast<std::int64_t>(threshold), text_array(also));
      for (const auto& row : rows) out.emplace_back(row[0].as<std::string>(), row[1].as<std::uint64_t>());
      return out;
    });
  }

  // A streamed message's state-0 row and chunks are committed without waiting
  // for a WAL flush: until 0->1 nothing was promised, and the synchronous
  // commit of 0->1 flushes the WAL up to itself, these writes included.
  void begin_message(std::int64_t msg_id, const NewMessage& message) override {
    with_tx([&](pqxx::work& tx) {
      without_flush_wait(tx);
      create_message(tx, msg_id, message);
      return 0;
    });
  }

  // One statement for a block of ids; the listener asks ahead (QueueIdReserve),
  // so a message costs no round trip for its id.
  std::vector<std::int64_t> reserve_message_ids(int count) override {
    return without_tx([&](pqxx::nontransaction& tx) { return pg::reserve_message_ids(tx, count); });
  }

  void append_body(std::int64_t msg_id, int seq, std::string_view data) override {
    with_tx([&](pqxx::work& tx) {
      without_flush_wait(tx);
      append_body_chunk(tx, msg_id, seq, data);
      return 0;
    });
  }

  void commit_message(std::int64_t msg_id, std::int64_t size, const std::string& fair_client,
                      const ReceiptEdits& edits) override {
    bool ok = false;
    try {
      auto stamp = without_tx([&](pqxx::nontransaction& tx) { return stamp_receiving(tx, msg_id, fair_client); });
      ok = with_tx([&](pqxx::work& tx) {
        apply_edits(tx, msg_id, edits);
        return commit_received(tx, msg_id, size, stamp);
      });
    } catch (const pqxx::in_doubt_error& e) {
      if (resolve_in_doubt({msg_id}, e)) return;
      throw;
    }
    if (!ok) throw std::runtime_error(fmt::format("msg={} was no longer in state RECEIVING", qid(msg_id)));
    wake_router();
  }

  void abort_message(std::int64_t msg_id) override {
    with_tx([&](pqxx::work& tx) { return discard_receiving(tx, msg_id); });
  }

  // One statement, its own transaction and one durable commit, under the ids
  // the sessions reserved ahead. A connection lost during it leaves its
  // outcome unknown: resolved by asking about the ids.
  void store_messages(const std::vector<CompleteMessage>& messages) override {
    std::vector<std::int64_t> ids;
    ids.reserve(messages.size());
    for (const auto& m : messages) ids.push_back(m.msg_id);
    // Connecting first: a connection that cannot be made sent nothing, and
    // is answered 451 at once.
    ensure_connected();
    try {
      without_tx([&](pqxx::nontransaction& tx) {
        store_received_batch(tx, ids, messages);
        return 0;
      });
    } catch (const std::exception& e) {
      // failed() dropped the connection: it broke with the statement sent.
      if (conn_ || !resolve_in_doubt(ids, e)) throw;
    }
    wake_router();
  }

  bool verify_user(const std::string& username, const std::string& password) override {
    // The hash is fetched in a short transaction; the slow comparison runs after it.
    auto hash = without_tx([&](pqxx::nontransaction& tx) { return auth_user_hash(tx, username); });
    if (hash.empty()) {
      verify_password_dummy(password);
      return false;
    }
    return verify_password(hash, password);
  }

 private:
  static void apply_edits(pqxx::work& tx, std::int64_t msg_id, const ReceiptEdits& edits) {
    if (edits.header) append_body_chunk(tx, msg_id, 0, *edits.header);
    if (!edits.changes_envelope()) return;
    std::optional<std::string> rcpts;
    if (edits.recipients) rcpts = text_array(*edits.recipients);
    tx.exec_params("SELECT edit_receipt($1, $2, $3::text[], $4, $5, $6)", msg_id, edits.envelope_from, rcpts,
                   edits.held_reason, edits.drop_first, edits.drop_last);
  }

  // The connection died between COMMIT and its answer: the 0->1 move may or may
  // not have happened. 451 for a committed message would make the client send it
  // again (a duplicate); 250 for an uncommitted one would lose it. So ask the
  // database which it was, reconnecting for a bounded time. True: committed.
  bool resolve_in_doubt(const std::vector<std::int64_t>& ids, const std::exception& cause) {
    log::error("msg={} commit in doubt ({}); asking the database", qid(ids.front()), cause.what());
    conn_.reset();
    report_lost(cause.what());
    for (int attempt = 0; attempt < 30; ++attempt) {
      try {
        ensure_connected();
        pqxx::read_transaction tx(*conn_);
        auto row = tx.exec_params1(
            "SELECT count(*) FILTER (WHERE state >= 1) FROM messages WHERE id = ANY($1::bigint[])", bigint_array(ids));
        auto committed = row[0].as<std::size_t>();
        log::error("msg={} in-doubt commit resolved: {}", qid(ids.front()),
                   committed == ids.size() ? "committed" : "not committed");
        return committed == ids.size();
      } catch (const std::exception& e) {
        conn_.reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    }
    log::error("msg={} in-doubt commit unresolved after 15s; answering 451", qid(ids.front()));
    return false;
  }

  // The router learns of new mail from a NOTIFY sent after the commit, outside
  // it (db/wakeup.h). Failing to send it loses nothing: routers poll.
  void wake_router() { waker_->request(kRouteChannel); }

  // A new connection to a shard is checked to be that shard before any use
  // (a conninfo that now reaches another shard's database, a standby of
  // another shard promoted): mail is never stored in the wrong database.
  void ensure_connected() {
    const auto epoch = shard_ ? shard_->epoch->errors.load() : 0;
    if (conn_ && conn_->is_open() && conn_epoch_ == epoch) return;
    conn_.reset();
    conn_epoch_ = epoch;
    try {
      auto conn = connect(conninfo_);
      if (shard_) require_shard_identity(*conn, shard_->database, shard_->shard);
      defer_wakeups(*conn);
      conn_ = std::move(conn);
    } catch (const WrongShard& e) {
      if (shard_ && shard_->lost) shard_->lost(e.what(), true);
      throw;
    } catch (const std::exception& e) {
      report_lost(e.what());
      throw;
    }
  }

  // Only connection errors count: a statement refused for its data says
  // nothing about the shard's health.
  void failed(const std::exception& e) {
    if (is_connection_error(e) || (conn_ && !conn_->is_open())) {
      conn_.reset();
      report_lost(e.what());
    }
  }

  void report_lost(const std::string& why) {
    if (!shard_) return;
    ++shard_->epoch->errors;
    if (shard_->lost) shard_->lost(why, false);
  }

  static void without_flush_wait(pqxx::transaction_base& tx) { tx.exec0("SET LOCAL synchronous_commit = off"); }

  // One statement, its own transaction: no BEGIN/COMMIT round trips around it.
  template <class Fn>
  auto without_tx(Fn&& fn) -> decltype(fn(std::declval<pqxx::nontransaction&>())) {
    ensure_connected();
    try {
      pqxx::nontransaction tx(*conn_);
      return fn(tx);
    } catch (const std::exception& e) {
      failed(e);
      throw;
    }
  }

  // Runs fn in a transaction and commits. A broken connection is dropped so the
  // next call reconnects (and the shard reported); the exception still reaches
  // the caller (-> 451).
  template <class Fn>
  auto with_tx(Fn&& fn) -> decltype(fn(std::declval<pqxx::work&>())) {
    ensure_connected();
    try {
      pqxx::work tx(*conn_);
      auto result = fn(tx);
      tx.commit();
      return result;
    } catch (const std::exception& e) {
      failed(e);
      throw;
    }
  }

  std::string conninfo_;
  std::shared_ptr<WakeupSender> waker_;
  std::optional<ShardLink> shard_;  // none for the directory's stores
  std::unique_ptr<pqxx::connection> conn_;
  std::uint64_t conn_epoch_ = 0;  // the shard's epoch when conn_ was made
};

}  // namespace

std::unique_ptr<Store> make_pg_store(const std::string& conninfo, std::shared_ptr<WakeupSender> waker) {
  if (!waker) throw std::invalid_argument("make_pg_store needs a WakeupSender");
  return std::make_unique<PgStore>(conninfo, std::move(waker), std::nullopt);
}

std::unique_ptr<Store> make_shard_store(const DatabaseConfig& database, const ShardConfig& shard,
                                        std::shared_ptr<WakeupSender> waker, ShardLost lost,
                                        std::shared_ptr<ShardEpoch> epoch) {
  if (!waker) throw std::invalid_argument("make_shard_store needs a WakeupSender");
  if (!epoch) epoch = std::make_shared<ShardEpoch>();
  return std::make_unique<PgStore>(shard.conninfo, std::move(waker),
                                   ShardLink{database, shard, std::move(lost), std::move(epoch)});
}

std::string check_shard(const DatabaseConfig& database, const ShardConfig& shard, bool& wrong_database) {
  wrong_database = false;
  try {
    auto conn = connect(shard.conninfo);
    pqxx::nontransaction tx(*conn);
    tx.exec1("SELECT 1");
    tx.commit();
    require_shard_identity(*conn, database, shard);
    return {};
  } catch (const WrongShard& e) {
    wrong_database = true;
    return e.what();
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace wsmtp::common::pg
