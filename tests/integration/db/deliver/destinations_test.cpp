// Per-destination concurrency and backoff against a real PostgreSQL (021):
// slots are advisory locks of the session that took them, at most `limit`
// per destination across sessions, gone with the session; the delivery claim
// skips destinations whose every slot is held or that are backed off, and
// claims the rest; verdicts count failures, back off with doubling delays up
// to the cap (a failure reported during a backoff does not count), and a success clears them. Also the claim's cost
// with the filter at a depth of 10,000 messages.
#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "db/destinations.h"
#include "pg/transitions.h"
#include "routed_message.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;

namespace {

const ClaimOptions kClaim{.owner = "deliverer", .lease_time = 60s, .limit = 100, .max_expired_claims = 5};
const DestinationLimits kLimits{{"relay", "maildir"}, {2, 2}};

int count(test::TestDatabase& db, const std::string& sql) { return db.query(sql)[0][0].as<int>(); }

std::set<std::string> claimed_destinations(pqxx::connection& conn) {
  std::set<std::string> out;
  for (const auto& c : claim_for_delivery(conn, kClaim, {"relay", "maildir"}, kLimits))
    for (const auto& t : c.tasks) out.insert(t.transport + ":" + t.destination);
  return out;
}

}  // namespace

TEST_CASE("a destination has at most its limit of slots across sessions, freed by release or disconnect") {
  test::TestDatabase db;
  auto a = db.connect();
  auto b = db.connect();
  auto c = db.connect();
  const Destination pool{"relay", "p1"};
  const Destination other{"relay", "p2"};
  auto got_a = acquire_destination_slots(*a, {{pool, 2}, {other, 2}});
  REQUIRE(got_a.size() == 2);
  CHECK(got_a[0].slot == 0);
  auto got_b = acquire_destination_slots(*b, {{pool, 2}});
  REQUIRE(got_b.size() == 1);
  CHECK(got_b[0].slot == 1);
  // Both slots of p1 are held: c gets none of p1, one of p2 (a has slot 0).
  auto got_c = acquire_destination_slots(*c, {{pool, 2}, {other, 2}});
  REQUIRE(got_c.size() == 1);
  CHECK(got_c[0].destination == other);
  CHECK(got_c[0].slot == 1);
  // The same name on another transport is another destination.
  CHECK(acquire_destination_slots(*c, {{{"maildir", "p1"}, 1}}).size() == 1);
  release_destination_slots(*b, got_b);
  auto again = acquire_destination_slots(*c, {{pool, 2}});
  REQUIRE(again.size() == 1);
  CHECK(again[0].slot == 1);
  // A worker that dies loses its slots with its connection.
  a.reset();
  for (int i = 0; i < 50 && count(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()") > 3;
       ++i)
    std::this_thread::sleep_for(20ms);
  auto after_death = acquire_destination_slots(*b, {{pool, 2}});
  REQUIRE(after_death.size() == 1);
  CHECK(after_death[0].slot == 0);
}

TEST_CASE("the claim skips saturated and backed-off destinations and claims the others") {
  test::TestDatabase db;
  auto conn = db.connect();
  test::received_and_routed(*conn, {"m1\r\n"}, "relay", "stuck");
  test::received_and_routed(*conn, {"m2\r\n"}, "relay", "fine");
  test::received_and_routed(*conn, {"m3\r\n"}, "maildir", "/var/mail/a");
  test::received_and_routed(*conn, {"m4\r\n"}, "relay", "resting");
  auto holder1 = db.connect();
  auto holder2 = db.connect();
  REQUIRE(acquire_destination_slots(*holder1, {{{"relay", "stuck"}, 2}}).size() == 1);
  REQUIRE(acquire_destination_slots(*holder2, {{{"relay", "stuck"}, 2}}).size() == 1);
  // One slot of two held: open.
  REQUIRE(acquire_destination_slots(*holder1, {{{"relay", "fine"}, 2}}).size() == 1);
  db.query(
      "INSERT INTO destination_backoff (transport, destination, failures, backoff_until) "
      "VALUES ('relay', 'resting', 3, now() + interval '1 hour')");
  CHECK(claimed_destinations(*conn) == std::set<std::string>{"relay:fine", "maildir:/var/mail/a"});
  CHECK(count(db, "SELECT count(*) FROM messages WHERE state = 3") == 2);

  // A message with one open and one saturated destination is claimed with
  // only the open one's task.
  SECTION("partly open message") {
    db.query(
        "UPDATE messages SET state = 3, lease_owner = NULL, lease_token = NULL, lease_expires = NULL "
        "WHERE state = 4");
    db.query(
        "INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination) "
        "SELECT message_id, 'b@y.org', 'b@y.org', 'relay', 'fine' FROM deliveries WHERE destination = 'stuck'");
    auto claims = claim_for_delivery(*conn, kClaim, {"relay", "maildir"}, kLimits);
    std::set<std::string> tasks;
    for (const auto& c : claims)
      for (const auto& t : c.tasks) tasks.insert(t.recipient + ">" + t.destination);
    CHECK(tasks == std::set<std::string>{"a@y.org>fine", "b@y.org>fine", "a@y.org>/var/mail/a"});
  }
  SECTION("freed and expired") {
    holder2.reset();  // its slot of "stuck" goes with it
    for (int i = 0; i < 50 && count(db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") > 2; ++i)
      std::this_thread::sleep_for(20ms);
    db.query("UPDATE destination_backoff SET backoff_until = now() - interval '1 second'");
    CHECK(claimed_destinations(*conn) == std::set<std::string>{"relay:stuck", "relay:resting"});
  }
  SECTION("no limits given: only the backoff applies") {
    std::set<std::string> out;
    for (const auto& c : claim_for_delivery(*conn, kClaim, {"relay", "maildir"}))
      for (const auto& t : c.tasks) out.insert(t.destination);
    CHECK(out == std::set<std::string>{"stuck"});
  }
}

TEST_CASE("verdicts: failures in a row back a destination off, doubling to the cap; a success clears it") {
  test::TestDatabase db;
  auto conn = db.connect();
  const BackoffPolicy policy{.after = 2, .base = 30s, .max = 100s};
  const Destination pool{"relay", "p"};
  auto record = [&](bool failed) {
    pqxx::work tx(*conn);
    auto out = record_destination_verdicts(tx, {{pool, failed, failed ? "4.4.1 unreachable" : ""}}, policy);
    tx.commit();
    return out;
  };
  CHECK(record(true).empty());  // one failure: counted, not yet backed off
  CHECK(count(db, "SELECT failures FROM destination_backoff") == 1);
  CHECK(count(db, "SELECT count(*) FROM destination_backoff WHERE backoff_until IS NULL") == 1);
  auto second = record(true);
  REQUIRE(second.count(pool));
  CHECK(second[pool] >= 29s);
  CHECK(second[pool] <= 30s);
  // Another worker's attempt from the same outage, reported during the
  // backoff: neither counted nor extending it.
  auto during = record(true);
  CHECK(during[pool] <= 30s);
  CHECK(count(db, "SELECT failures FROM destination_backoff") == 2);
  auto expire = [&] { db.query("UPDATE destination_backoff SET backoff_until = now() - interval '1 second'"); };
  expire();  // the probe after the backoff fails again: the delay doubles
  auto third = record(true);
  CHECK(third[pool] >= 59s);
  CHECK(third[pool] <= 60s);
  expire();
  auto fourth = record(true);
  CHECK(fourth[pool] == 100s);  // 120 s capped
  CHECK(db.query("SELECT last_error FROM destination_backoff")[0][0].as<std::string>() == "4.4.1 unreachable");
  CHECK(record(false).empty());
  CHECK(count(db, "SELECT count(*) FROM destination_backoff") == 0);
  SECTION("after = 1 backs off at the first failure; after = 0 never") {
    pqxx::work tx(*conn);
    CHECK(record_destination_verdicts(tx, {{pool, true, "x"}}, {.after = 1, .base = 5s, .max = 10s})[pool] <= 5s);
    CHECK(record_destination_verdicts(tx, {{{"lmtp", "s"}, true, "x"}}, {.after = 0, .base = 5s, .max = 10s}).empty());
  }
}

TEST_CASE("claim cost with the destination filter at a depth of 10,000 messages") {
  test::TestDatabase db;
  auto conn = db.connect();
  test::received_and_routed(*conn, {"seed\r\n"}, "relay", "stuck");
  // 10,000 routed messages: 5,000 for a saturated pool, queued first, then
  // 5,000 for Maildirs of 100 mailboxes.
  db.query("INSERT INTO messages (envelope_from, size) SELECT 's@x.org', 10 FROM generate_series(1, 10000)");
  for (int state : {1, 2, 3})
    db.query("UPDATE messages SET state = " + std::to_string(state) +
             ", next_attempt_at = now() - interval '1 hour' + id * interval '1 ms' WHERE id > 1");
  db.query(
      "INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination) "
      "SELECT id, 'r@y.org', 'r@y.org', CASE WHEN id <= 5001 THEN 'relay' ELSE 'maildir' END, "
      "       CASE WHEN id <= 5001 THEN 'stuck' ELSE '/var/mail/' || (id % 100) END "
      "FROM messages WHERE id > 1");
  db.query("ANALYZE");
  auto holder1 = db.connect();
  auto holder2 = db.connect();
  acquire_destination_slots(*holder1, {{{"relay", "stuck"}, 2}});
  acquire_destination_slots(*holder2, {{{"relay", "stuck"}, 2}});
  const ClaimOptions claim{
      .owner = "w", .lease_time = 60s, .limit = 20, .max_expired_claims = 5, .reclaim_expired = false};
  auto timed = [&](const std::string& want) {
    const auto start = std::chrono::steady_clock::now();
    int claimed = 0;
    for (int i = 0; i < 20; ++i) {
      auto claims = claim_for_delivery(*conn, claim, {"relay", "maildir"}, kLimits);
      claimed += static_cast<int>(claims.size());
      for (const auto& c : claims) REQUIRE(c.tasks.front().transport == want);
    }
    CHECK(claimed == 400);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / 20;
  };
  // The saturated pool's 5,000 messages are first in line: every claim
  // passes over them to the Maildir mail behind.
  const double skipping = timed("maildir");
  // The same claims with nothing saturated: the filter's own cost.
  holder1.reset();
  holder2.reset();
  for (int i = 0; i < 50 && count(db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") > 0; ++i)
    std::this_thread::sleep_for(20ms);
  const double open = timed("relay");
  WARN("claim of 20 at a depth of 10,000: " << open << " ms with every destination open, " << skipping
                                            << " ms passing over 5,000 messages of a saturated pool");
  CHECK(skipping < 250);
}
