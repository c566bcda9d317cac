// The backlog counters of backpressure (schema 020) against a real database,
// each step under the role that takes it: the listener's receipts count once
// committed (whole and streamed), routing and deferral change nothing,
// delivery and an operator's delete take a message off, receipts in progress
// and generated messages never count, concurrent writers give exact totals,
// and the reaper's fold keeps every total while merging the rows. Also the
// fair-order keys: a local sender's flood does not push another local sender
// back (route_vtime).
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "listener/db/message_store.h"
#include "listener/db/wakeup.h"
#include "pg/transitions.h"
#include "role_connection.h"
#include "test_database.h"

using namespace wsmtp;

namespace {

using Totals = std::map<std::string, std::int64_t>;

Totals totals(test::TestDatabase& db) {
  Totals out;
  for (const auto& row : db.query("SELECT key, sum(n)::bigint FROM backlog_counts GROUP BY key HAVING sum(n) <> 0"))
    out[row[0].as<std::string>()] = row[1].as<std::int64_t>();
  return out;
}

std::unique_ptr<common::Store> listener_store(test::TestDatabase& db, const std::string& login = "t_wsmtp_listener") {
  test::ensure_login_role(db, login, "wsmtp_listener");
  return common::pg::make_pg_store(db.conninfo() + " user=" + login,
                                   std::make_shared<common::pg::WakeupSender>(db.conninfo()));
}

common::CompleteMessage whole(const std::string& from, std::vector<std::string> keys, std::string fair_client = "") {
  common::NewMessage envelope{
      from, "192.0.2.7", "client.example", "mx1", {"bob@example.org"}, std::move(keys), std::move(fair_client)};
  return {std::move(envelope), "Subject: x\r\n\r\nx\r\n"};
}

std::vector<std::int64_t> store_all(common::Store& store, std::vector<common::CompleteMessage> batch) {
  auto ids = store.reserve_message_ids(static_cast<int>(batch.size()));
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i].msg_id = ids.at(i);
  store.store_messages(batch);
  return ids;
}

// Streamed: state 0 with a body, then committed.
std::int64_t stream(common::Store& store, const std::string& from, std::vector<std::string> keys,
                    const std::string& fair_client, bool commit = true) {
  auto id = store.reserve_message_ids(1).front();
  store.begin_message(
      id, common::NewMessage{
              from, "192.0.2.7", "client.example", "mx1", {"bob@example.org"}, std::move(keys), fair_client});
  store.append_body(id, 0, "Subject: big\r\n\r\nbig\r\n");
  if (commit)
    store.commit_message(id, 20, fair_client, {});
  else
    store.abort_message(id);
  return id;
}

void move_as(pqxx::connection& conn, std::int64_t id, int from, int to) {
  REQUIRE(test::exec_as(conn,
                        fmt::format("UPDATE messages SET state = {} WHERE id = {} AND state = {}", to, id, from)) == 1);
}

}  // namespace

TEST_CASE("receipts count once committed; routing and deferral keep them; delivery and delete take them off",
          "[backlog]") {
  test::TestDatabase db;
  auto store = listener_store(db);
  const std::vector<std::string> keys{"c:192.0.2.7", "d:spam.example"};

  auto ids = store_all(*store, {whole("a@spam.example", keys), whole("b@spam.example", keys),
                                whole("c@ok.example", {"c:192.0.2.7", "d:ok.example"})});
  CHECK(totals(db) == Totals{{"c:192.0.2.7", 3}, {"d:spam.example", 2}, {"d:ok.example", 1}});

  // A streamed receipt counts from its commit, an aborted one never.
  auto id0 = store->reserve_message_ids(1).front();
  store->begin_message(
      id0, common::NewMessage{"d@spam.example", "192.0.2.7", "h", "mx1", {"bob@example.org"}, keys, "192.0.2.7"});
  CHECK(totals(db)["d:spam.example"] == 2);
  store->append_body(id0, 0, "Subject: big\r\n\r\nbig\r\n");
  store->commit_message(id0, 20, "192.0.2.7", {});
  CHECK(totals(db)["d:spam.example"] == 3);
  stream(*store, "e@spam.example", keys, "192.0.2.7", /*commit=*/false);
  CHECK(totals(db) == Totals{{"c:192.0.2.7", 4}, {"d:spam.example", 3}, {"d:ok.example", 1}});
  // Keys are stored sorted, whatever order the listener gave.
  CHECK(
      db.query(fmt::format("SELECT backlog_keys::text FROM messages WHERE id = {}", ids[2]))[0][0].as<std::string>() ==
      "{c:192.0.2.7,d:ok.example}");

  // Router 1 -> 2 -> 3, deliverer 3 -> 4 -> 3 (deferred), 3 -> 4 -> 5.
  auto router = test::connect_as(db, "wsmtp_router");
  auto deliver = test::connect_as(db, "wsmtp_deliver");
  move_as(*router, ids[0], 1, 2);
  move_as(*router, ids[0], 2, 3);
  move_as(*deliver, ids[0], 3, 4);
  move_as(*deliver, ids[0], 4, 3);
  CHECK(totals(db)["d:spam.example"] == 3);
  move_as(*deliver, ids[0], 3, 4);
  move_as(*deliver, ids[0], 4, 5);
  CHECK(totals(db) == Totals{{"c:192.0.2.7", 3}, {"d:spam.example", 2}, {"d:ok.example", 1}});
  // A router handing a message back (2 -> 1) keeps it counted.
  move_as(*router, ids[1], 1, 2);
  move_as(*router, ids[1], 2, 1);
  CHECK(totals(db)["d:spam.example"] == 2);

  // An operator deletes in states 1-4 (wsmtpctl delete); the reaper deletes
  // done messages, which no longer count.
  auto admin = test::connect_as(db, "wsmtp_admin");
  move_as(*router, ids[2], 1, 2);
  move_as(*router, ids[2], 2, 3);
  CHECK(test::exec_as(*admin, fmt::format("DELETE FROM messages WHERE id IN ({}, {})", ids[1], ids[2])) == 2);
  CHECK(totals(db) == Totals{{"c:192.0.2.7", 1}, {"d:spam.example", 1}});
  auto reaper = test::connect_as(db, "wsmtp_reaper");
  CHECK(test::exec_as(*reaper, fmt::format("DELETE FROM messages WHERE id = {}", ids[0])) == 1);
  CHECK(totals(db) == Totals{{"c:192.0.2.7", 1}, {"d:spam.example", 1}});
}

TEST_CASE("generated messages and receipts without keys are not counted", "[backlog]") {
  test::TestDatabase db;
  auto router = test::connect_as(db, "wsmtp_router");
  {
    pqxx::work tx(*router);
    common::NewMessage dsn{"", "", "", "router", {"x@remote.test"}, {"d:should.not.count"}, ""};
    common::pg::create_generated_message(tx, dsn, "Subject: dsn\r\n\r\nx\r\n", "dsn", 0);
    tx.commit();
  }
  auto store = listener_store(db);
  store_all(*store, {whole("a@x.example", {})});
  CHECK(totals(db).empty());
  CHECK(db.query("SELECT count(*) FROM messages WHERE state = 1 AND backlog_keys IS NULL")[0][0].as<int>() == 2);
}

TEST_CASE("concurrent writers give exact totals, and the fold keeps them", "[backlog]") {
  test::TestDatabase db;
  constexpr int kBatches = 40, kPerBatch = 10;
  const std::vector<std::string> keys{"c:192.0.2.7", "d:flood.example"};
  // Two listener hosts storing at once, each its own connection and row.
  // Connections are made first: TestDatabase's own connection is not shared
  // between threads.
  std::shared_ptr<common::Store> stores[] = {listener_store(db, "t_mx1"), listener_store(db, "t_mx2")};
  auto run = [&](int host) {
    auto& store = stores[host];
    std::vector<std::int64_t> all;
    for (int b = 0; b < kBatches; ++b) {
      std::vector<common::CompleteMessage> batch;
      for (int i = 0; i < kPerBatch; ++i) batch.push_back(whole("f@flood.example", keys));
      auto ids = store_all(*store, batch);
      all.insert(all.end(), ids.begin(), ids.end());
    }
    return all;
  };
  auto one = std::async(std::launch::async, run, 0);
  auto two = std::async(std::launch::async, run, 1);
  auto ids = one.get();
  auto more = two.get();
  ids.insert(ids.end(), more.begin(), more.end());
  const std::int64_t total = 2 * kBatches * kPerBatch;
  CHECK(totals(db) == Totals{{"c:192.0.2.7", total}, {"d:flood.example", total}});
  CHECK(db.query("SELECT count(DISTINCT writer) FROM backlog_counts")[0][0].as<int>() == 2);

  // Two deliverers finish half of them at once, in single-message statements.
  std::unique_ptr<pqxx::connection> routers[] = {test::connect_as(db, "wsmtp_router"),
                                                 test::connect_as(db, "wsmtp_router")};
  std::unique_ptr<pqxx::connection> deliverers[] = {test::connect_as(db, "wsmtp_deliver"),
                                                    test::connect_as(db, "wsmtp_deliver")};
  auto finish = [&](std::size_t from) {
    auto& router = routers[from];
    auto& deliver = deliverers[from];
    for (std::size_t i = from; i < ids.size() / 2; i += 2) {
      move_as(*router, ids[i], 1, 2);
      move_as(*router, ids[i], 2, 3);
      move_as(*deliver, ids[i], 3, 4);
      move_as(*deliver, ids[i], 4, 5);
    }
  };
  {
    auto a = std::async(std::launch::async, finish, 0);
    auto b = std::async(std::launch::async, finish, 1);
    a.get();
    b.get();
  }
  CHECK(totals(db) == Totals{{"c:192.0.2.7", total / 2}, {"d:flood.example", total / 2}});

  // The fold (as the reaper) merges every row nobody holds into writer 0, in
  // batches, and keeps every total.
  auto reaper = test::connect_as(db, "wsmtp_reaper");
  std::int64_t moved = 0;
  for (int i = 0; i < 10; ++i) moved += test::query_as(*reaper, "SELECT backlog_fold(3)")[0][0].as<std::int64_t>();
  CHECK(moved > 0);
  CHECK(totals(db) == Totals{{"c:192.0.2.7", total / 2}, {"d:flood.example", total / 2}});
  CHECK(db.query("SELECT count(*) FROM backlog_counts WHERE writer <> 0")[0][0].as<int>() == 0);
  CHECK(db.query("SELECT count(*) FROM backlog_counts")[0][0].as<int>() == 2);

  // A key that reaches zero disappears at the next fold.
  {
    auto router = test::connect_as(db, "wsmtp_router");
    auto deliver = test::connect_as(db, "wsmtp_deliver");
    REQUIRE(test::exec_as(*router, "UPDATE messages SET state = 2 WHERE state = 1") == ids.size() / 2);
    REQUIRE(test::exec_as(*router, "UPDATE messages SET state = 3 WHERE state = 2") == ids.size() / 2);
    REQUIRE(test::exec_as(*deliver, "UPDATE messages SET state = 4 WHERE state = 3") == ids.size() / 2);
    REQUIRE(test::exec_as(*deliver, "UPDATE messages SET state = 5 WHERE state = 4") == ids.size() / 2);
  }
  CHECK(totals(db).empty());
  test::query_as(*reaper, "SELECT backlog_fold(1000)");
  CHECK(db.query("SELECT count(*) FROM backlog_counts")[0][0].as<int>() == 0);
}

TEST_CASE("the fold never waits on a writer's open transaction, and keeps its count", "[backlog]") {
  test::TestDatabase db;
  auto store = listener_store(db);
  store_all(*store, {whole("a@x.example", {"d:x.example"})});
  // A writer in the middle of a transaction that holds its row of the key.
  auto writer = db.connect();
  pqxx::work open(*writer);
  open.exec("UPDATE messages SET state = 2 WHERE state = 1");
  open.exec("UPDATE messages SET state = 3 WHERE state = 2");
  open.exec("UPDATE messages SET state = 4 WHERE state = 3");
  open.exec("UPDATE messages SET state = 5 WHERE state = 4");  // its row now holds -1, uncommitted
  auto reaper = test::connect_as(db, "wsmtp_reaper");
  auto t0 = std::chrono::steady_clock::now();
  test::query_as(*reaper, "SET lock_timeout = '5s'; SELECT backlog_fold(1000)");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  CHECK(totals(db) == Totals{{"d:x.example", 1}});
  open.commit();
  CHECK(totals(db).empty());
  test::query_as(*reaper, "SELECT backlog_fold(1000)");
  CHECK(db.query("SELECT count(*) FROM backlog_counts")[0][0].as<int>() == 0);
}

// Issue 16, fairness keying: mail from a limit-exempt or trusted client (all
// local mail comes from 127.0.0.1) advances no client clock, so one local
// sender's flood does not push another local sender's message behind it.
// Before 020 the client clock (10 ms a message) put the latecomer behind a
// tenth of a 500-message flood whose sender clock advances 100 ms a message.
TEST_CASE("a local sender's flood does not push another local sender back", "[backlog][fairness]") {
  test::TestDatabase db;
  auto store = listener_store(db);
  constexpr int kFlood = 500;
  std::vector<common::CompleteMessage> flood;
  for (int i = 0; i < kFlood; ++i) flood.push_back(whole("flood@local.example", {"c:127.0.0.1"}));
  store_all(*store, flood);
  auto late_whole = store_all(*store, {whole("friend@local.example", {"c:127.0.0.1"})}).front();
  auto late_streamed = stream(*store, "other@local.example", {"c:127.0.0.1"}, "");
  for (auto late : {late_whole, late_streamed}) {
    auto before =
        db.query(fmt::format("SELECT count(*) FROM messages f, messages l WHERE l.id = {} "
                             "AND f.envelope_from = 'flood@local.example' AND f.route_vtime <= l.route_vtime",
                             late))[0][0]
            .as<int>();
    INFO("message " << late << " is behind " << before << " of the flood");
    CHECK(before <= kFlood / 50);
  }
  // The address is still recorded as it was.
  CHECK(db.query(fmt::format("SELECT host(client_addr) FROM messages WHERE id = {}", late_streamed))[0][0]
            .as<std::string>() == "192.0.2.7");
}
