// Leases of a working worker against a real PostgreSQL: renewal (only our own
// tokens, never waiting on a locked row, never counted as an expiry), the
// renewal thread and its progress bound, what finishing a claim does to a
// message an operator held or deleted meanwhile, and that only a worker that
// stopped counts as an expiry.
#include <chrono>
#include <functional>
#include <thread>

#include <catch2/catch.hpp>

#include "pg/lease_keeper.h"
#include "pg/operator_actions.h"
#include "pg/transitions.h"
#include "pg/transitions_hold.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using common::MsgState;
using namespace std::chrono_literals;

namespace {

std::int64_t receive(pqxx::connection& conn, const std::vector<std::string>& rcpts) {
  pqxx::work tx(conn);
  auto id = create_message(tx, {"s@x.org", "192.0.2.7", "client.example", "test", rcpts});
  REQUIRE(commit_received(tx, id, 123));
  tx.commit();
  return id;
}

ClaimOptions opts(const std::string& owner, std::chrono::seconds lease = 60s) {
  return {.owner = owner, .lease_time = lease, .limit = 10, .max_expired_claims = 5};
}

// Messages in DELIVERING, each with one maildir delivery per recipient.
std::vector<DeliveryClaim> delivering(pqxx::connection& conn, int messages, int rcpts = 1) {
  for (int m = 0; m < messages; ++m) {
    std::vector<std::string> to;
    for (int r = 0; r < rcpts; ++r) to.push_back("r" + std::to_string(r) + "@x.org");
    receive(conn, to);
  }
  auto routing = claim_for_routing(conn, opts("router"));
  REQUIRE(routing.size() == static_cast<std::size_t>(messages));
  {
    pqxx::work tx(conn);
    for (const auto& c : routing) {
      std::vector<PlannedDelivery> plan;
      for (const auto& r : c.recipients) plan.push_back({r, r, "maildir", "/m/" + r, std::nullopt});
      REQUIRE(finish_routing(tx, c.lease, plan));
    }
    tx.commit();
  }
  auto claims = claim_for_delivery(conn, opts("deliverer"), {"maildir"});
  REQUIRE(claims.size() == static_cast<std::size_t>(messages));
  return claims;
}

std::string id_s(std::int64_t id) { return std::to_string(id); }

// Seconds until the lease of msg expires.
double left(test::TestDatabase& db, std::int64_t id) {
  return db.query("SELECT extract(epoch FROM lease_expires - now()) FROM messages WHERE id = " + id_s(id))[0][0]
      .as<double>();
}

void shorten(test::TestDatabase& db, std::int64_t id, int seconds) {
  db.query("UPDATE messages SET lease_expires = now() + interval '" + std::to_string(seconds) +
           " seconds' WHERE id = " + id_s(id));
}

void operator_do(pqxx::connection& conn, const std::function<void(pqxx::work&)>& action) {
  pqxx::work tx(conn);
  action(tx);
  tx.commit();
}

}  // namespace

TEST_CASE("renewal extends only leases whose token still matches, and never counts an expiry") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claims = delivering(*conn, 3);
  for (const auto& c : claims) shorten(db, c.lease.msg_id, 5);
  // The second lease was taken over: its token is no longer ours.
  Lease stale = claims[1].lease;
  stale.token = "00000000-0000-4000-8000-000000000000";
  auto checks = renew_leases(*conn, MsgState::delivering, {claims[0].lease, stale, claims[2].lease}, 60s);
  REQUIRE(checks.size() == 3);
  CHECK(checks[0].msg_id == claims[0].lease.msg_id);
  CHECK(checks[0].status == LeaseStatus::ours);
  CHECK(checks[0].renewed);
  CHECK(checks[1].status == LeaseStatus::lost);
  CHECK_FALSE(checks[1].renewed);
  CHECK(checks[2].status == LeaseStatus::ours);
  CHECK(left(db, claims[0].lease.msg_id) > 55);
  CHECK(left(db, claims[1].lease.msg_id) < 6);  // not touched
  CHECK(left(db, claims[2].lease.msg_id) > 55);

  // Plenty of time left: read, not written.
  auto again = renew_leases(*conn, MsgState::delivering, {claims[0].lease}, 60s);
  CHECK(again[0].status == LeaseStatus::ours);
  CHECK_FALSE(again[0].renewed);

  // The wrong state is not ours either (a DELIVERING lease renewed as ROUTING).
  CHECK(renew_leases(*conn, MsgState::routing, {claims[0].lease}, 60s)[0].status == LeaseStatus::lost);

  // Renewed leases are live: the reaper returns none and counts nothing.
  CHECK(reset_expired_leases(*conn, MsgState::delivering, 5, 100).reset == 0);
  CHECK(db.query("SELECT max(expired_claims) FROM messages")[0][0].as<int>() == 0);
}

TEST_CASE("renewal skips a row another transaction holds locked instead of waiting for it") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claims = delivering(*conn, 1);
  shorten(db, claims[0].lease.msg_id, 5);
  auto other = db.connect();
  pqxx::work locker(*other);
  locker.exec("SELECT 1 FROM messages WHERE id = " + id_s(claims[0].lease.msg_id) + " FOR UPDATE");
  auto started = std::chrono::steady_clock::now();
  auto checks = renew_leases(*conn, MsgState::delivering, {claims[0].lease}, 60s);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK(checks[0].status == LeaseStatus::ours);  // what the snapshot shows: being finished, still ours
  CHECK_FALSE(checks[0].renewed);
  locker.abort();
  CHECK(renew_leases(*conn, MsgState::delivering, {claims[0].lease}, 60s)[0].renewed);
}

TEST_CASE("a message held under a delivery lease: finishing records what was done and leaves it held") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claims = delivering(*conn, 2, 2);
  const auto& partly = claims[0];  // one of two deliveries done when the hold came
  const auto& whole = claims[1];   // both done: the hold is moot
  operator_do(*conn, [&](pqxx::work& tx) {
    CHECK(hold_messages(tx, {partly.lease.msg_id, whole.lease.msg_id}, "looks odd").size() == 2);
  });
  auto checks = renew_leases(*conn, MsgState::delivering, {partly.lease, whole.lease}, 60s);
  CHECK(checks[0].status == LeaseStatus::held);
  CHECK(checks[1].status == LeaseStatus::held);

  pqxx::work tx(*conn);
  CHECK(finish_delivered_batch(tx, {{whole.lease,
                                     {{whole.tasks[0].delivery_id, DeliveryStatus::delivered, "ok", 0s},
                                      {whole.tasks[1].delivery_id, DeliveryStatus::delivered, "ok", 0s}}}}) ==
        std::vector<std::int64_t>{whole.lease.msg_id});
  CHECK(finish_delivery(tx, partly.lease, {{partly.tasks[0].delivery_id, DeliveryStatus::delivered, "ok", 0s}}) ==
        FinishOutcome::deferred);
  tx.commit();

  auto row = db.query("SELECT state, held, held_reason, lease_token IS NULL, expired_claims FROM messages WHERE id = " +
                      id_s(partly.lease.msg_id));
  CHECK(row[0][0].as<int>() == 3);  // back to ROUTED, not further
  CHECK(row[0][1].as<bool>());
  CHECK(row[0][2].as<std::string>() == "looks odd");
  CHECK(row[0][3].as<bool>());
  CHECK(row[0][4].as<int>() == 0);
  CHECK(db.query("SELECT string_agg(status || ':' || attempts, ',' ORDER BY id) FROM deliveries WHERE message_id = " +
                 id_s(partly.lease.msg_id))[0][0]
            .as<std::string>() == "delivered:1,pending:0");
  CHECK(db.query("SELECT state, held FROM messages WHERE id = " + id_s(whole.lease.msg_id))[0][0].as<int>() == 5);
  CHECK_FALSE(db.query("SELECT held FROM messages WHERE id = " + id_s(whole.lease.msg_id))[0][0].as<bool>());
  // Held in ROUTED: no deliverer takes it until a release.
  CHECK(claim_for_delivery(*conn, opts("next"), {"maildir"}).empty());
  operator_do(*conn, [&](pqxx::work& t) { CHECK(release_messages(t, {partly.lease.msg_id}).size() == 1); });
  auto next = claim_for_delivery(*conn, opts("next"), {"maildir"});
  REQUIRE(next.size() == 1);
  CHECK(next[0].tasks.size() == 1);
}

TEST_CASE("a message held under a routing lease is routed and stays held in ROUTED") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, {"a@x.org"});
  auto routing = claim_for_routing(*conn, opts("router"));
  REQUIRE(routing.size() == 1);
  operator_do(*conn, [&](pqxx::work& tx) { CHECK(hold_messages(tx, {id}, "wait").size() == 1); });
  CHECK(renew_leases(*conn, MsgState::routing, {routing[0].lease}, 60s)[0].status == LeaseStatus::held);
  {
    pqxx::work tx(*conn);
    CHECK(finish_routing(tx, routing[0].lease, {{"a@x.org", "a@x.org", "maildir", "/m/a", std::nullopt}}));
    tx.commit();
  }
  auto row = db.query("SELECT state, held FROM messages WHERE id = " + id_s(id));
  CHECK(row[0][0].as<int>() == 3);
  CHECK(row[0][1].as<bool>());
  CHECK(claim_for_delivery(*conn, opts("d"), {"maildir"}).empty());
}

TEST_CASE("renewing or finishing a message deleted under its lease is a clean 'deleted' / lost lease") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claims = delivering(*conn, 2);
  auto routed_id = receive(*conn, {"b@x.org"});
  auto routing = claim_for_routing(*conn, opts("router"));
  REQUIRE(routing.size() == 1);
  operator_do(*conn, [&](pqxx::work& tx) {
    CHECK(delete_messages(tx, {claims[0].lease.msg_id, routed_id}).size() == 2);
  });
  auto checks = renew_leases(*conn, MsgState::delivering, {claims[0].lease, claims[1].lease}, 60s);
  CHECK(checks[0].status == LeaseStatus::deleted);
  CHECK(checks[1].status == LeaseStatus::ours);
  CHECK(renew_leases(*conn, MsgState::routing, {routing[0].lease}, 60s)[0].status == LeaseStatus::deleted);
  pqxx::work tx(*conn);
  CHECK(finish_delivery(tx, claims[0].lease, {{claims[0].tasks[0].delivery_id, DeliveryStatus::delivered, "", 0s}}) ==
        FinishOutcome::lost_lease);
  CHECK(finish_delivered_batch(
            tx, {{claims[0].lease, {{claims[0].tasks[0].delivery_id, DeliveryStatus::delivered, "", 0s}}}})
            .empty());
  CHECK(
      finish_routing(tx, {RoutingPlan{routing[0].lease, {{"b@x.org", "b@x.org", "maildir", "/m/b", std::nullopt}}, {}}})
          .empty());
  CHECK(tx.exec("SELECT count(*) FROM deliveries WHERE message_id = " + id_s(routed_id))[0][0].as<int>() == 0);
}

TEST_CASE("the lease keeper renews while the worker progresses, reports holds, and stops when released") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claims = delivering(*conn, 2);
  const auto a = claims[0].lease, b = claims[1].lease;
  LeaseKeeper keeper({.conninfo = db.conninfo(), .lease_time = 60s, .stall_limit = 600s});
  {
    auto kept = keeper.keep(MsgState::delivering, {a, b});
    shorten(db, a.msg_id, 5);
    operator_do(*conn, [&](pqxx::work& tx) { CHECK(hold_messages(tx, {b.msg_id}, "stop").size() == 1); });
    keeper.renew_now();
    CHECK(left(db, a.msg_id) > 55);
    CHECK(kept.status(a.msg_id) == LeaseStatus::ours);
    CHECK(kept.status(b.msg_id) == LeaseStatus::held);
  }
  // Released (the batch was finished): no longer renewed.
  shorten(db, a.msg_id, 5);
  keeper.renew_now();
  CHECK(left(db, a.msg_id) < 6);
}

TEST_CASE("a worker that shows no progress within stall_limit lets its leases expire") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claims = delivering(*conn, 1);
  const auto a = claims[0].lease;
  LeaseKeeper keeper({.conninfo = db.conninfo(), .lease_time = 60s, .stall_limit = 1s});
  auto kept = keeper.keep(MsgState::delivering, {a});
  std::this_thread::sleep_for(1200ms);
  shorten(db, a.msg_id, 5);
  keeper.renew_now();
  CHECK(left(db, a.msg_id) < 6);  // wedged: not renewed, the lease runs out and counts
  keeper.progress();
  keeper.renew_now();
  CHECK(left(db, a.msg_id) > 55);
}

TEST_CASE("the renewal thread keeps a short lease alive past twice its time") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claims = delivering(*conn, 1);
  const auto a = claims[0].lease;
  shorten(db, a.msg_id, 2);
  LeaseKeeper keeper({.conninfo = db.conninfo(), .lease_time = 2s, .stall_limit = 600s});  // renews every ~0.67 s
  auto kept = keeper.keep(MsgState::delivering, {a});
  std::this_thread::sleep_for(4500ms);
  CHECK(left(db, a.msg_id) > 0);
  CHECK(reset_expired_leases(*conn, MsgState::delivering, 5, 100).reset == 0);
  CHECK(db.query("SELECT lease_token::text FROM messages WHERE id = " + id_s(a.msg_id))[0][0].as<std::string>() ==
        a.token);
}

TEST_CASE("a lease handed back after a routing failure is retried without counting an expiry") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, {"a@x.org"});
  auto claims = claim_for_routing(*conn, opts("router"));
  REQUIRE(claims.size() == 1);
  auto failure = record_routing_failure(*conn, claims[0].lease, "boom", 5, 60s);
  CHECK(failure.recorded);
  CHECK(failure.failures == 1);
  // Handed back: no longer the router's to renew (that would undo the backoff).
  auto check = renew_leases(*conn, MsgState::routing, {claims[0].lease}, 60s);
  CHECK(check[0].status == LeaseStatus::lost);
  CHECK_FALSE(check[0].renewed);
  db.query("UPDATE messages SET lease_expires = now() - interval '1 second'");
  auto retry = claim_for_routing(*conn, opts("router"));
  REQUIRE(retry.size() == 1);
  CHECK(retry[0].expired_claims == 0);
  // Failing again, then returned by the reaper: still not an expiry.
  CHECK(record_routing_failure(*conn, retry[0].lease, "boom", 5, 60s).failures == 2);
  db.query("UPDATE messages SET lease_expires = now() - interval '1 second'");
  CHECK(reset_expired_leases(*conn, MsgState::routing, 5, 100).reset == 1);
  auto row = db.query("SELECT expired_claims, routing_failures, state FROM messages WHERE id = " + id_s(id));
  CHECK(row[0][0].as<int>() == 0);
  CHECK(row[0][1].as<int>() == 2);
  CHECK(row[0][2].as<int>() == 1);
  // A worker that stopped still counts.
  REQUIRE(claim_for_routing(*conn, opts("router")).size() == 1);
  db.query("UPDATE messages SET lease_expires = now() - interval '1 second'");
  CHECK(reset_expired_leases(*conn, MsgState::routing, 5, 100).reset == 1);
  CHECK(db.query("SELECT expired_claims FROM messages WHERE id = " + id_s(id))[0][0].as<int>() == 1);
}
