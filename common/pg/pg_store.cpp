#include "pg/pg_store.h"

#include <stdexcept>

#include <fmt/format.h>

#include "log.h"
#include "pg/auth_users.h"
#include "pg/body.h"
#include "pg/connection.h"
#include "pg/directory.h"
#include "pg/transitions.h"
#include "password.h"

namespace wsmtp::common::pg {
namespace {

class PgStore final : public Store {
 public:
  explicit PgStore(std::string conninfo) : conninfo_(std::move(conninfo)) {}

  RecipientVerdict check_recipient(const std::string& address, const std::string& domain) override {
    return with_tx([&](pqxx::work& tx) { return pg::check_recipient(tx, address, domain); });
  }

  std::int64_t begin_message(const NewMessage& message) override {
    return with_tx([&](pqxx::work& tx) { return create_message(tx, message); });
  }

  void append_body(std::int64_t msg_id, int seq, std::string_view data) override {
    with_tx([&](pqxx::work& tx) {
      append_body_chunk(tx, msg_id, seq, data);
      return 0;
    });
  }

  void commit_message(std::int64_t msg_id, std::int64_t size) override {
    bool ok = with_tx([&](pqxx::work& tx) { return commit_received(tx, msg_id, size); });
    if (!ok) throw std::runtime_error(fmt::format("msg={} was no longer in state RECEIVING", msg_id));
  }

  void abort_message(std::int64_t msg_id) override {
    with_tx([&](pqxx::work& tx) { return discard_receiving(tx, msg_id); });
  }

  std::vector<std::int64_t> store_messages(const std::vector<CompleteMessage>& messages) override {
    return with_tx([&](pqxx::work& tx) {
      std::vector<std::int64_t> ids;
      ids.reserve(messages.size());
      for (const auto& m : messages) {
        auto id = create_message(tx, m.envelope);
        append_body_chunk(tx, id, 0, m.body);
        if (!commit_received(tx, id, static_cast<std::int64_t>(m.body.size())))
          throw std::runtime_error(fmt::format("msg={} vanished before it was committed", id));
        ids.push_back(id);
      }
      return ids;
    });
  }

  bool verify_user(const std::string& username, const std::string& password) override {
    // The hash is fetched in a short transaction; the slow comparison runs after it.
    auto hash = with_tx([&](pqxx::work& tx) { return auth_user_hash(tx, username); });
    if (hash.empty()) {
      verify_password_dummy(password);
      return false;
    }
    return verify_password(hash, password);
  }

 private:
  // Runs fn in a transaction and commits. A broken connection is dropped so the
  // next call reconnects; the exception still reaches the caller (-> 451).
  template <class Fn>
  auto with_tx(Fn&& fn) -> decltype(fn(std::declval<pqxx::work&>())) {
    if (!conn_ || !conn_->is_open()) conn_ = connect(conninfo_);
    try {
      pqxx::work tx(*conn_);
      auto result = fn(tx);
      tx.commit();
      return result;
    } catch (const pqxx::broken_connection&) {
      conn_.reset();
      throw;
    }
  }

  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace

std::unique_ptr<Store> make_pg_store(const std::string& conninfo) { return std::make_unique<PgStore>(conninfo); }

}  // namespace wsmtp::common::pg
