// Operator selections and bulk actions, and the reaper pass, on a real database.
#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "ctl/db/message_filter.h"
#include "pg/operator_actions.h"
#include "pg/transitions.h"
#include "pg/transitions_hold.h"
#include "pg/waiter.h"
#include "reap/reap_pass.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;

namespace {

std::int64_t receive(pqxx::connection& conn, const std::string& from, const std::string& rcpt,
                     const std::string& client = "192.0.2.1") {
  pqxx::work tx(conn);
  auto id = create_message(tx, {from, client, "h", "test", {rcpt}});
  commit_received(tx, id, 10);
  tx.commit();
  return id;
}

// Routes every received message to a Maildir delivery.
void route_all(pqxx::connection& conn) {
  for (const auto& c :
       claim_for_routing(conn, {.owner = "r", .lease_time = 60s, .limit = 1000, .max_expired_claims = 5})) {
    pqxx::work tx(conn);
    finish_routing(tx, c.lease, {{c.recipients[0], c.recipients[0], "maildir", "/m", std::nullopt}});
    tx.commit();
  }
}

std::vector<std::int64_t> select(pqxx::connection& conn, const MessageFilter& f) {
  pqxx::read_transaction tx(conn);
  return select_messages(tx, f);
}

}  // namespace

TEST_CASE("filters select by id, state, sender, recipient, client, held and age") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto a = receive(*conn, "spam@x.org", "u1@local.test", "198.51.100.7");
  auto b = receive(*conn, "spam@x.org", "u2@local.test");
  auto c = receive(*conn, "", "u1@local.test");
  MessageFilter f;
  CHECK(select(*conn, f) == std::vector<std::int64_t>{a, b, c});
  f.sender = "spam@x.org";
  CHECK(select(*conn, f) == std::vector<std::int64_t>{a, b});
  f = {};
  f.sender = "";  // the null sender
  CHECK(select(*conn, f) == std::vector<std::int64_t>{c});
  f = {};
  f.recipient = "U1@local.test";
  CHECK(select(*conn, f) == std::vector<std::int64_t>{a, c});
  f = {};
  f.client = "198.51.100.0/24";
  CHECK(select(*conn, f) == std::vector<std::int64_t>{a});
  f = {};
  f.ids = {b, c};
  f.state = common::MsgState::received;
  CHECK(select(*conn, f) == std::vector<std::int64_t>{b, c});
  f = {};
  f.older_than = 3600s;
  CHECK(select(*conn, f).empty());
  db.query("UPDATE messages SET created_at = now() - interval '2 hours' WHERE id = " + std::to_string(a));
  CHECK(select(*conn, f) == std::vector<std::int64_t>{a});
  {
    pqxx::work tx(*conn);
    CHECK(hold_messages(tx, {a, b}, "spam run") == MessageIds{a, b});
    CHECK(hold_messages(tx, {a}, "again").empty());  // already held
    tx.commit();
  }
  f = {};
  f.held = true;
  CHECK(select(*conn, f) == std::vector<std::int64_t>{a, b});
  CHECK(claim_for_routing(*conn, {.owner = "r", .lease_time = 60s, .limit = 10, .max_expired_claims = 5}).size() ==
        1);  // only c
  pqxx::work tx(*conn);
  CHECK(release_messages(tx, {a, b}).size() == 2);
  CHECK(delete_messages(tx, {a}) == MessageIds{a});
  tx.commit();
  CHECK(db.query("SELECT count(*) FROM messages")[0][0].as<int>() == 2);
}

TEST_CASE("retry and queue-lifetime expiry act on routed messages only") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto a = receive(*conn, "s@x.org", "u1@local.test");
  auto b = receive(*conn, "s@x.org", "u2@local.test");
  auto unrouted = receive(*conn, "s@x.org", "u3@local.test");
  route_all(*conn);  // routes all three...
  // ...then put the third back, as if it had not been routed yet.
  db.query("DELETE FROM deliveries WHERE message_id = " + std::to_string(unrouted));
  db.query("UPDATE messages SET state = 4 WHERE id = " + std::to_string(unrouted));
  db.query("UPDATE deliveries SET attempts = 3, next_attempt_at = now() + interval '1 hour', last_error = '451 busy'");
  db.query("UPDATE messages SET next_attempt_at = now() + interval '1 hour' WHERE state = 3");

  MessageFilter deferred;
  deferred.deferred = true;
  CHECK(select(*conn, deferred) == std::vector<std::int64_t>{a, b});
  {
    pqxx::work tx(*conn);
    CHECK(retry_now(tx, {a, unrouted}) == MessageIds{a});  // DELIVERING: the deliverer sets its next time
    tx.commit();
  }
  CHECK(db.query("SELECT count(*) FROM deliveries WHERE next_attempt_at <= now()")[0][0].as<int>() == 1);
  db.query("UPDATE messages SET held = true WHERE id = " + std::to_string(b));
  {
    pqxx::work tx(*conn);
    CHECK(retry_now(tx, {b}).empty());  // held: no deliverer would claim it, so nothing is due
    auto why = message_snapshots(tx, {b, unrouted, 424242});
    REQUIRE(why.size() == 2);
    CHECK(why[0].held);
    CHECK(why[0].pending == 1);
    CHECK(why[1].state == 4);
  }
  db.query("UPDATE deliveries SET status = 'bounced', final_at = now() WHERE message_id = " + std::to_string(b));

  CHECK(expire_queue_lifetime(*conn, 86400s, 100) == 0);
  db.query("UPDATE messages SET received_at = now() - interval '6 days'");
  CHECK(expire_queue_lifetime(*conn, 5 * 86400s, 100) == 1);  // a's delivery; b has none pending
  CHECK(db.query("SELECT last_error FROM deliveries WHERE message_id = " + std::to_string(a))[0][0]
            .as<std::string>()
            .rfind("4.4.7", 0) == 0);
}

TEST_CASE("a reaper pass returns leases, deletes old messages and reports it") {
  test::TestDatabase db;
  auto conn = db.connect();
  receive(*conn, "s@x.org", "u1@local.test");
  auto done = receive(*conn, "s@x.org", "u2@local.test");
  REQUIRE(claim_for_routing(*conn, {.owner = "dead", .lease_time = 60s, .limit = 1, .max_expired_claims = 5}).size() ==
          1);
  db.query("UPDATE messages SET lease_expires = now() - interval '1 second' WHERE state = 2");
  db.query("UPDATE messages SET state = 2 WHERE id = " + std::to_string(done));
  db.query("UPDATE messages SET state = 3 WHERE id = " + std::to_string(done));
  db.query("UPDATE messages SET state = 4 WHERE id = " + std::to_string(done));
  db.query("UPDATE messages SET state = 5 WHERE id = " + std::to_string(done));
  // The trigger stamps state_changed_at on every move; age it afterwards.
  db.query("UPDATE messages SET state_changed_at = now() - interval '30 days' WHERE id = " + std::to_string(done));
  pqxx::work tx(*conn);
  auto aborted = create_message(tx, {"s@x.org", "", "h", "t", {"u@local.test"}});
  tx.commit();
  db.query("UPDATE messages SET state_changed_at = now() - interval '2 hours' WHERE id = " + std::to_string(aborted));

  common::reap::ReaperConfig config;
  common::QueueConfig queue;
  auto s = common::reap::reap_once(*conn, config, queue);
  CHECK(s.routing_reset == 1);
  CHECK(s.aborted_deleted == 1);
  CHECK(s.done_deleted == 1);
  CHECK(db.query("SELECT count(*) FROM messages")[0][0].as<int>() == 1);
  auto again = common::reap::reap_once(*conn, config, queue);
  CHECK(again.routing_reset + again.aborted_deleted + again.done_deleted == 0);
}

TEST_CASE("several reapers at once never do the same work twice") {
  test::TestDatabase db;
  constexpr int kMessages = 3000;
  db.query("INSERT INTO messages (envelope_from, state_changed_at) SELECT 'x@y', now() FROM generate_series(1, " +
           std::to_string(kMessages) + ")");
  db.query("UPDATE messages SET state_changed_at = now() - interval '1 day'");
  common::reap::ReaperConfig config;
  config.batch_size = 100;
  common::QueueConfig queue;
  std::atomic<int> deleted{0};
  std::vector<std::thread> reapers;
  for (int i = 0; i < 3; ++i)
    reapers.emplace_back([&] {
      auto conn = db.connect();
      for (int pass = 0; pass < 20; ++pass) deleted += common::reap::reap_once(*conn, config, queue).aborted_deleted;
    });
  for (auto& t : reapers) t.join();
  CHECK(deleted == kMessages);
  CHECK(db.query("SELECT count(*) FROM messages")[0][0].as<int>() == 0);
}

TEST_CASE("a release gives a held message a fresh set of attempts") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, "s@x.org", "u1@local.test");
  // As the router leaves a poison message: failures counted, held.
  db.query(
      "UPDATE messages SET routing_failures = 3, expired_claims = 2, held = true, held_reason = 'routing failed 3 "
      "times' WHERE id = " +
      std::to_string(id));
  {
    pqxx::work tx(*conn);
    CHECK(release_messages(tx, {id}).size() == 1);
    tx.commit();
  }
  auto r = db.query("SELECT held, routing_failures, expired_claims, held_reason IS NULL FROM messages");
  CHECK_FALSE(r[0][0].as<bool>());
  CHECK(r[0][1].as<int>() == 0);
  CHECK(r[0][2].as<int>() == 0);
  CHECK(r[0][3].as<bool>());
  db.query("UPDATE messages SET routing_failures = 3, held = true WHERE id = " + std::to_string(id));
  // Routers wait for a NOTIFY once their queue looked drained: the release
  // sends one on the channel of the stage the message waits for.
  auto router = db.connect();
  common::pg::WorkWaiter waiter(*router, common::pg::kRouteChannel);
  {
    pqxx::work tx(*conn);
    CHECK(release_message(tx, id));
    tx.commit();
  }
  CHECK(waiter.wait(std::chrono::seconds(10)));
  CHECK(db.query("SELECT routing_failures FROM messages")[0][0].as<int>() == 0);
}
