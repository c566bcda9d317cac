// The listener's group commit against a real database, under its own role:
// a batch of messages stored with set-based statements keeps each message's
// recipients and body with it (ids are not mixed up), moves all to state 1, and
// the deferred wake-up replaces the trigger's NOTIFY for that session only.
#include <algorithm>

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "pg/body.h"
#include "listener/db/message_store.h"
#include "pg/transitions.h"
#include "pg/waiter.h"
#include "listener/db/wakeup.h"
#include "test_database.h"

using namespace wsmtp;
using namespace std::chrono_literals;

namespace {

std::string listener_conninfo(test::TestDatabase& db) {
  db.query(
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't_wsmtp_listener') THEN "
      "CREATE ROLE t_wsmtp_listener LOGIN IN ROLE wsmtp_listener; END IF; END $$");
  return db.conninfo() + " user=t_wsmtp_listener";
}

std::string body_of(test::TestDatabase& db, std::int64_t id) {
  auto conn = db.connect();
  pqxx::work tx(*conn);
  std::string out;
  common::pg::read_body(tx, id, [&](std::string_view part) { out.append(part); });
  return out;
}

common::CompleteMessage message(const std::string& from, std::vector<std::string> rcpts, std::string body) {
  return {{from, "192.0.2.7", "client.example", "mx1", std::move(rcpts)}, std::move(body)};
}

// What the listener does: ids reserved ahead (the queue ids its sessions
// named the messages by), then the batch stored under them. Returns the ids.
std::vector<std::int64_t> store_all(common::Store& store, std::vector<common::CompleteMessage> batch) {
  auto ids = store.reserve_message_ids(static_cast<int>(batch.size()));
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i].msg_id = ids.at(i);
  store.store_messages(batch);
  return ids;
}

}  // namespace

TEST_CASE("a batch of messages is stored whole, each with its own recipients and body") {
  test::TestDatabase db;
  std::string binary("Subject: bin\r\n\r\n\x00\x01\xff\xfe\r\n", 20);
  std::vector<common::CompleteMessage> batch{
      message("a@example.org", {"x@example.test"}, "Subject: one\r\n\r\nfirst\r\n"),
      message("", {"y@example.test", "z@example.test", "\"q u\"@example.test"}, binary),
      message("c@example.org", {"w@example.test"}, std::string(200000, 'x')),
  };
  auto store =
      common::pg::make_pg_store(listener_conninfo(db), std::make_shared<common::pg::WakeupSender>(db.conninfo()));
  auto ids = store_all(*store, batch);
  REQUIRE(ids.size() == 3);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto row =
        db.query(fmt::format("SELECT state, size, envelope_from, host(client_addr), received_at IS NOT NULL "
                             "FROM messages WHERE id = {}",
                             ids[i]))[0];
    CHECK(row[0].as<int>() == 1);
    CHECK(row[1].as<std::size_t>() == batch[i].body.size());
    CHECK(row[2].as<std::string>() == batch[i].envelope.envelope_from);
    CHECK(row[3].as<std::string>() == "192.0.2.7");
    CHECK(row[4].as<bool>());
    std::vector<std::string> rcpts;
    for (const auto& r :
         db.query(fmt::format("SELECT address FROM recipients WHERE message_id = {} ORDER BY seq", ids[i])))
      rcpts.push_back(r[0].as<std::string>());
    CHECK(rcpts == batch[i].envelope.recipients);
    CHECK(body_of(db, ids[i]) == batch[i].body);
  }
}

TEST_CASE("the listener's session wakes the router after its commit, not from inside it") {
  test::TestDatabase db;
  auto watcher_conn = db.connect();
  common::pg::WorkWaiter router(*watcher_conn, common::pg::kRouteChannel);

  SECTION("a deferring session's transaction does not notify") {
    auto conn = std::make_unique<pqxx::connection>(listener_conninfo(db));
    common::pg::defer_wakeups(*conn);
    {
      pqxx::work tx(*conn);
      std::vector<common::CompleteMessage> batch{message("a@example.org", {"x@example.test"}, "x\r\n")};
      common::pg::store_received_batch(tx, common::pg::reserve_message_ids(tx, 1), batch);
      tx.commit();
    }
    CHECK_FALSE(router.wait(300ms));
    common::pg::send_wakeup(*conn, common::pg::kRouteChannel);
    CHECK(router.wait(5s));
  }
  SECTION("any other session still notifies from the trigger") {
    auto conn = db.connect();
    pqxx::work tx(*conn);
    std::vector<common::CompleteMessage> batch{message("a@example.org", {"x@example.test"}, "x\r\n")};
    common::pg::store_received_batch(tx, common::pg::reserve_message_ids(tx, 1), batch);
    tx.commit();
    CHECK(router.wait(5s));
  }
  SECTION("the listener's store sends the wake-up after each commit") {
    auto store =
        common::pg::make_pg_store(listener_conninfo(db), std::make_shared<common::pg::WakeupSender>(db.conninfo()));
    store_all(*store, {message("a@example.org", {"x@example.test"}, "x\r\n")});
    CHECK(router.wait(5s));
  }
}

TEST_CASE("a stored batch is stamped in the router's fair order like messages stamped one by one") {
  test::TestDatabase db;
  auto store =
      common::pg::make_pg_store(listener_conninfo(db), std::make_shared<common::pg::WakeupSender>(db.conninfo()));
  auto flood = store_all(*store, {message("Flood@example.org", {"x@example.test"}, "1\r\n"),
                                  message("flood@example.org", {"x@example.test"}, "2\r\n"),
                                  message("other@example.org", {"x@example.test"}, "3\r\n"),
                                  message("flood@example.org", {"x@example.test"}, "4\r\n")});
  auto vtime = [&](std::int64_t id) {
    return db.query(fmt::format("SELECT route_vtime FROM messages WHERE id = {}", id))[0][0].as<std::int64_t>();
  };
  // One sender's messages are 100 apart on its clock; the other sender is not
  // queued behind them (only the shared client's 10 per message separates it).
  CHECK(vtime(flood[1]) - vtime(flood[0]) >= 100);
  CHECK(vtime(flood[3]) - vtime(flood[1]) >= 100);
  CHECK(vtime(flood[2]) < vtime(flood[1]));
  auto clock = db.query("SELECT next_vtime FROM route_fairness WHERE fair_key = 's:flood@example.org'")[0][0];
  CHECK(clock.as<std::int64_t>() == vtime(flood[3]) + 100);
  // A later message from the flooding sender goes after all of them.
  auto later = store_all(*store, {message("flood@example.org", {"x@example.test"}, "5\r\n")});
  CHECK(vtime(later[0]) >= vtime(flood[3]) + 100);
}

TEST_CASE("only the listener role may create messages through the batch function") {
  test::TestDatabase db;
  db.query(
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't_wsmtp_router') THEN "
      "CREATE ROLE t_wsmtp_router LOGIN IN ROLE wsmtp_router; END IF; END $$");
  pqxx::connection router(db.conninfo() + " user=t_wsmtp_router");
  std::vector<common::CompleteMessage> batch{message("a@example.org", {"x@example.test"}, "x\r\n")};
  pqxx::work tx(router);
  CHECK_THROWS_AS(common::pg::store_received_batch(tx, {1}, batch), pqxx::insufficient_privilege);
}

TEST_CASE("a shared wake-up sender wakes the router for commits made through any store") {
  test::TestDatabase db;
  auto watcher_conn = db.connect();
  common::pg::WorkWaiter router(*watcher_conn, common::pg::kRouteChannel);
  auto waker = std::make_shared<common::pg::WakeupSender>(db.conninfo());
  auto first = common::pg::make_pg_store(listener_conninfo(db), waker);
  auto second = common::pg::make_pg_store(listener_conninfo(db), waker);
  store_all(*first, {message("a@example.org", {"x@example.test"}, "x\r\n")});
  CHECK(router.wait(5s));
  store_all(*second, {message("b@example.org", {"x@example.test"}, "y\r\n")});
  CHECK(router.wait(5s));
}

TEST_CASE("stores reserve message ids that no other store, and no later message, ever gets") {
  test::TestDatabase db;
  auto waker = std::make_shared<common::pg::WakeupSender>(db.conninfo());
  auto first = common::pg::make_pg_store(listener_conninfo(db), waker);
  auto second = common::pg::make_pg_store(listener_conninfo(db), waker);
  std::vector<std::int64_t> all;
  for (int round = 0; round < 3; ++round) {
    for (auto* store : {first.get(), second.get()}) {
      auto ids = store->reserve_message_ids(64);
      REQUIRE(ids.size() == 64);
      all.insert(all.end(), ids.begin(), ids.end());
    }
  }
  // Stored in any order under their reserved ids, each id names its message.
  std::vector<common::CompleteMessage> batch;
  for (int i = 0; i < 70; ++i) {
    batch.push_back(message("a@example.org", {"x@example.test"}, fmt::format("{}\r\n", i)));
    batch.back().msg_id = all[all.size() - 1 - static_cast<std::size_t>(i)];
  }
  second->store_messages(batch);
  CHECK(body_of(db, all.back()) == "0\r\n");
  CHECK(body_of(db, all[all.size() - 70]) == "69\r\n");
  // A message created from the sequence later (a DSN, another listener) never collides.
  auto conn = db.connect();
  pqxx::work tx(*conn);
  all.push_back(common::pg::create_message(tx, {"s@example.org", "", "h", "mx2", {"u@example.test"}}));
  tx.commit();
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  CHECK(db.query("SELECT count(*) FROM messages")[0][0].as<std::size_t>() == 71);
}

TEST_CASE("a streamed message is created in state 0 under the queue id the session took") {
  test::TestDatabase db;
  auto store =
      common::pg::make_pg_store(listener_conninfo(db), std::make_shared<common::pg::WakeupSender>(db.conninfo()));
  auto id = store->reserve_message_ids(1).at(0);
  store->begin_message(id,
                       {"s@example.org", "192.0.2.7", "client.example", "mx1", {"a@example.test", "b@example.test"}});
  auto row = db.query(fmt::format("SELECT state, envelope_from FROM messages WHERE id = {}", id));
  REQUIRE(row.size() == 1);
  CHECK(row[0][0].as<int>() == 0);
  CHECK(row[0][1].as<std::string>() == "s@example.org");
  CHECK(db.query(fmt::format("SELECT count(*) FROM recipients WHERE message_id = {}", id))[0][0].as<int>() == 2);
  store->append_body(id, 0, "Subject: s\r\n\r\nstreamed\r\n");
  store->commit_message(id, 27, "192.0.2.7", {});
  CHECK(db.query(fmt::format("SELECT state FROM messages WHERE id = {}", id))[0][0].as<int>() == 1);
  CHECK(body_of(db, id) == "Subject: s\r\n\r\nstreamed\r\n");
  // The same id twice is refused, never a second message under one queue id.
  CHECK_THROWS(store->begin_message(id, {"s@example.org", "", "h", "mx1", {"a@example.test"}}));
}
