// The state machine against a real PostgreSQL: every transition, leases and
// their expiry, holds, resets, and claimers racing for the same rows.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "pg/cleanup.h"
#include "pg/transitions.h"
#include "pg/transitions_hold.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using common::MsgState;
using namespace std::chrono_literals;

namespace {

std::int64_t receive(pqxx::connection& conn, const std::vector<std::string>& rcpts,
                     const std::string& from = "s@x.org") {
  pqxx::work tx(conn);
  auto id = create_message(tx, {from, "192.0.2.7", "client.example", "test", rcpts});
  REQUIRE(commit_received(tx, id, 123));
  tx.commit();
  return id;
}

int state_of(test::TestDatabase& db, std::int64_t id) {
  return db.query("SELECT state FROM messages WHERE id = " + std::to_string(id))[0][0].as<int>();
}

void expire_leases(test::TestDatabase& db) {
  db.query("UPDATE messages SET lease_expires = now() - interval '1 second' WHERE lease_expires IS NOT NULL");
}

ClaimOptions opts(const std::string& owner, int limit = 10, int max_expired = 5) {
  return {.owner = owner, .lease_time = 60s, .limit = limit, .max_expired_claims = max_expired};
}

std::vector<PlannedDelivery> maildir_plan(const std::string& rcpt) {
  return {{rcpt, rcpt, "maildir", "/tmp/m", std::nullopt}};
}

}  // namespace

TEST_CASE("a message walks 0 -> 1 -> 2 -> 3 -> 4 -> 5") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, {"a@x.org", "b@x.org"});
  CHECK(state_of(db, id) == 1);

  auto routing = claim_for_routing(*conn, opts("router-1"));
  REQUIRE(routing.size() == 1);
  CHECK(routing[0].recipients == std::vector<std::string>{"a@x.org", "b@x.org"});
  CHECK(routing[0].envelope_from == "s@x.org");
  CHECK(state_of(db, id) == 2);
  CHECK(db.query("SELECT lease_owner FROM messages")[0][0].as<std::string>() == "router-1");

  {
    pqxx::work tx(*conn);
    std::vector<PlannedDelivery> plan = {{"a@x.org", "a@x.org", "maildir", "/m/a", std::nullopt},
                                         {"b@x.org", "b@x.org", "bounce", "", std::string("5.1.1 user unknown")}};
    REQUIRE(finish_routing(tx, routing[0].lease, plan));
    tx.commit();
  }
  CHECK(state_of(db, id) == 3);
  CHECK(db.query("SELECT count(*) FROM deliveries WHERE status = 'bounced' AND final_at IS NOT NULL")[0][0].as<int>() ==
        1);

  CHECK(claim_for_delivery(*conn, opts("d"), {"relay"}).empty());  // not our transport
  auto delivering = claim_for_delivery(*conn, opts("deliver-1"), {"maildir"});
  REQUIRE(delivering.size() == 1);
  REQUIRE(delivering[0].tasks.size() == 1);
  CHECK(delivering[0].tasks[0].destination == "/m/a");
  CHECK(state_of(db, id) == 4);
  {
    pqxx::work tx(*conn);
    CHECK(finish_delivery(tx, delivering[0].lease,
                          {{delivering[0].tasks[0].delivery_id, DeliveryStatus::delivered, "ok", 0s}}) ==
          FinishOutcome::done);
    tx.commit();
  }
  CHECK(state_of(db, id) == 5);
  auto stamps = db.query(
      "SELECT received_at IS NOT NULL AND routing_at IS NOT NULL AND routed_at IS NOT NULL "
      "AND delivering_at IS NOT NULL AND done_at IS NOT NULL AND lease_token IS NULL FROM messages");
  CHECK(stamps[0][0].as<bool>());
}

TEST_CASE("an aborted receipt never reaches state 1") {
  test::TestDatabase db;
  auto conn = db.connect();
  pqxx::work tx(*conn);
  auto id = create_message(tx, {"s@x.org", "", "h", "test", {"a@x.org"}});
  tx.commit();
  CHECK(claim_for_routing(*conn, opts("r")).empty());  // state 0 is invisible to routers
  pqxx::work tx2(*conn);
  CHECK(discard_receiving(tx2, id));
  CHECK_FALSE(commit_received(tx2, id, 1));
  tx2.commit();
  CHECK(db.query("SELECT count(*) FROM messages")[0][0].as<int>() == 0);
}

TEST_CASE("a worker whose lease expired cannot commit over the next owner") {
  test::TestDatabase db;
  auto conn = db.connect();
  receive(*conn, {"a@x.org"});
  auto first = claim_for_routing(*conn, opts("slow"));
  REQUIRE(first.size() == 1);
  CHECK(claim_for_routing(*conn, opts("other")).empty());  // live lease: nobody else
  expire_leases(db);
  auto second = claim_for_routing(*conn, opts("fast"));
  REQUIRE(second.size() == 1);
  CHECK(second[0].lease.token != first[0].lease.token);
  CHECK(second[0].expired_claims == 1);
  {
    pqxx::work tx(*conn);
    CHECK_FALSE(finish_routing(tx, first[0].lease, maildir_plan("a@x.org")));
  }
  {
    pqxx::work tx(*conn);
    CHECK(finish_routing(tx, second[0].lease, maildir_plan("a@x.org")));
    tx.commit();
  }
  CHECK(db.query("SELECT count(*) FROM deliveries")[0][0].as<int>() == 1);

  auto d1 = claim_for_delivery(*conn, opts("slow"), {"maildir"});
  REQUIRE(d1.size() == 1);
  expire_leases(db);
  auto d2 = claim_for_delivery(*conn, opts("fast"), {"maildir"});
  REQUIRE(d2.size() == 1);
  pqxx::work tx(*conn);
  CHECK(finish_delivery(tx, d1[0].lease, {{d1[0].tasks[0].delivery_id, DeliveryStatus::delivered, "", 0s}}) ==
        FinishOutcome::lost_lease);
}

TEST_CASE("a message whose claims keep expiring is held, and release frees it") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, {"a@x.org"});
  REQUIRE(claim_for_routing(*conn, opts("w", 10, 2)).size() == 1);
  expire_leases(db);
  REQUIRE(claim_for_routing(*conn, opts("w", 10, 2)).size() == 1);  // expiry 1: re-claimed
  expire_leases(db);
  CHECK(claim_for_routing(*conn, opts("w", 10, 2)).empty());  // expiry 2: held
  auto row = db.query("SELECT state, held, held_reason, lease_token IS NULL FROM messages");
  CHECK(row[0][0].as<int>() == 1);
  CHECK(row[0][1].as<bool>());
  CHECK(row[0][2].as<std::string>().find("expired 2 times") != std::string::npos);
  CHECK(row[0][3].as<bool>());
  {
    pqxx::work tx(*conn);
    CHECK(release_message(tx, id));
    tx.commit();
  }
  CHECK(claim_for_routing(*conn, opts("w", 10, 2)).size() == 1);
  {
    pqxx::work tx(*conn);
    CHECK(hold_message(tx, id, "operator says so"));
    tx.commit();
  }
  CHECK(db.query("SELECT held FROM messages")[0][0].as<bool>());
}

TEST_CASE("deferred deliveries return the message to state 3 until they are due") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, {"a@x.org"});
  auto r = claim_for_routing(*conn, opts("r"));
  {
    pqxx::work tx(*conn);
    REQUIRE(finish_routing(tx, r[0].lease, maildir_plan("a@x.org")));
    tx.commit();
  }
  auto d = claim_for_delivery(*conn, opts("d"), {"maildir"});
  REQUIRE(d.size() == 1);
  {
    pqxx::work tx(*conn);
    CHECK(finish_delivery(tx, d[0].lease, {{d[0].tasks[0].delivery_id, DeliveryStatus::deferred, "disk full", 600s}}) ==
          FinishOutcome::deferred);
    tx.commit();
  }
  CHECK(state_of(db, id) == 3);
  CHECK(db.query("SELECT attempts, last_error FROM deliveries")[0][1].as<std::string>() == "disk full");
  CHECK(claim_for_delivery(*conn, opts("d"), {"maildir"}).empty());  // not due yet
  db.query("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'");
  db.query("UPDATE messages SET next_attempt_at = now() - interval '1 second'");
  auto again = claim_for_delivery(*conn, opts("d"), {"maildir"});
  REQUIRE(again.size() == 1);
  CHECK(again[0].tasks.at(0).attempts == 1);
}

TEST_CASE("the reaper returns expired leases and deletes old messages") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto routed = receive(*conn, {"a@x.org"});
  auto other = receive(*conn, {"b@x.org"});
  auto claims = claim_for_routing(*conn, opts("dead-router"));
  REQUIRE(claims.size() == 2);
  {
    pqxx::work tx(*conn);
    REQUIRE(finish_routing(tx, claims[0].lease, maildir_plan("a@x.org")));
    tx.commit();
  }
  REQUIRE(claim_for_delivery(*conn, opts("dead-deliverer"), {"maildir"}).size() == 1);
  CHECK(reset_expired_leases(*conn, MsgState::routing, 5, 100).reset == 0);  // leases still live
  expire_leases(db);
  CHECK(reset_expired_leases(*conn, MsgState::routing, 5, 100).reset == 1);
  CHECK(reset_expired_leases(*conn, MsgState::delivering, 5, 100).reset == 1);
  CHECK(state_of(db, claims[0].lease.msg_id == routed ? other : routed) == 1);
  CHECK(state_of(db, claims[0].lease.msg_id) == 3);

  pqxx::work tx(*conn);
  auto aborted = create_message(tx, {"s@x.org", "", "h", "t", {"a@x.org"}});
  tx.commit();
  CHECK(delete_aborted(*conn, 3600s, 100) == 0);
  db.query("UPDATE messages SET state_changed_at = now() - interval '2 hours' WHERE id = " + std::to_string(aborted));
  CHECK(delete_aborted(*conn, 3600s, 100) == 1);
  CHECK(db.query("SELECT count(*) FROM messages WHERE state = 0")[0][0].as<int>() == 0);
}

TEST_CASE("operator reset honours live leases, --force and filters") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto a = receive(*conn, {"a@x.org"});
  receive(*conn, {"b@x.org"});
  REQUIRE(claim_for_routing(*conn, opts("r")).size() == 2);
  {
    pqxx::work tx(*conn);
    ResetFilter f;
    f.state = MsgState::routing;
    CHECK(reset_candidates(tx, f).empty());  // leases are live
    CHECK(reset_messages(tx, f).empty());
    f.force = true;
    f.id = a;
    CHECK(reset_candidates(tx, f).size() == 1);
    CHECK(reset_messages(tx, f) == std::vector<std::int64_t>{a});
    tx.commit();
  }
  CHECK(state_of(db, a) == 1);
  expire_leases(db);
  pqxx::work tx(*conn);
  ResetFilter old;
  old.older_than = 3600s;
  CHECK(reset_messages(tx, old).empty());  // changed state just now
  ResetFilter by_state;
  by_state.state = MsgState::routing;
  CHECK(reset_messages(tx, by_state).size() == 1);
  tx.commit();
}

TEST_CASE("racing claimers each take a message exactly once") {
  test::TestDatabase db;
  constexpr int kMessages = 400;
  {
    auto conn = db.connect();
    for (int i = 0; i < kMessages; ++i) receive(*conn, {"r" + std::to_string(i) + "@x.org"});
  }
  std::mutex mu;
  std::vector<std::int64_t> routed, delivered;
  auto route_worker = [&](int n) {
    auto conn = db.connect();
    for (;;) {
      auto claims = claim_for_routing(*conn, opts("router-" + std::to_string(n), 7));
      if (claims.empty()) return;
      for (const auto& c : claims) {
        pqxx::work tx(*conn);
        REQUIRE(finish_routing(tx, c.lease, maildir_plan(c.recipients.at(0))));
        tx.commit();
        std::lock_guard lock(mu);
        routed.push_back(c.lease.msg_id);
      }
    }
  };
  auto deliver_worker = [&](int n) {
    auto conn = db.connect();
    for (;;) {
      auto claims = claim_for_delivery(*conn, opts("deliver-" + std::to_string(n), 5), {"maildir"});
      if (claims.empty()) return;
      for (const auto& c : claims) {
        pqxx::work tx(*conn);
        REQUIRE(finish_delivery(tx, c.lease, {{c.tasks.at(0).delivery_id, DeliveryStatus::delivered, "", 0s}}) ==
                FinishOutcome::done);
        tx.commit();
        std::lock_guard lock(mu);
        delivered.push_back(c.lease.msg_id);
      }
    }
  };
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back(route_worker, i);
    for (auto& t : threads) t.join();
  }
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back(deliver_worker, i);
    for (auto& t : threads) t.join();
  }
  for (auto* ids : {&routed, &delivered}) {
    std::sort(ids->begin(), ids->end());
    CHECK(ids->size() == kMessages);
    CHECK(std::adjacent_find(ids->begin(), ids->end()) == ids->end());
  }
  CHECK(db.query("SELECT count(*) FROM messages WHERE state = 5")[0][0].as<int>() == kMessages);
  CHECK(db.query("SELECT count(*) FROM deliveries WHERE status = 'delivered' AND attempts = 1")[0][0].as<int>() ==
        kMessages);
}

TEST_CASE("generated messages (bounces, auto-replies) enter at state 1 with their body") {
  test::TestDatabase db;
  auto conn = db.connect();
  std::string body = "Subject: bounce\r\n\r\n" + std::string(150000, 'x') + "\r\n";
  {
    pqxx::work tx(*conn);
    create_generated_message(tx, {"", "", "wdeliver", "wdeliver@host", {"sender@x.org"}}, body, "dsn", 1);
    tx.commit();
  }
  auto r = db.query("SELECT state, envelope_from, size, received_at IS NOT NULL FROM messages");
  CHECK(r[0][0].as<int>() == 1);
  CHECK(r[0][1].as<std::string>().empty());
  CHECK(r[0][2].as<std::size_t>() == body.size());
  CHECK(r[0][3].as<bool>());
  CHECK(db.query("SELECT count(*) FROM body_chunks")[0][0].as<int>() == 3);
  auto claims = claim_for_routing(*conn, opts("r"));
  REQUIRE(claims.size() == 1);
  CHECK(claims[0].recipients == std::vector<std::string>{"sender@x.org"});
}
