// The deliverer's two lanes (schema 022): fresh mail is claimed in fair order
// (route_vtime), so a flood from one sender does not hold back another
// sender's message; deferred mail due again gets at most retry_limit of each
// claim, so a backlog of mail that keeps failing does not hold back fresh mail.
#include <optional>
#include <set>

#include <catch2/catch.hpp>

#include "pg/transitions.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;

namespace {

std::int64_t receive(pqxx::connection& conn, const std::string& from, const std::string& client) {
  pqxx::work tx(conn);
  auto id = create_message(tx, {from, client, "client.example", "test", {"rcpt@x.org"}});
  REQUIRE(commit_received(tx, id, 100));
  tx.commit();
  return id;
}

// Routes everything received, in one transaction, so every message gets the
// same next_attempt_at and only the claim's order tells them apart.
void route_all(pqxx::connection& conn) {
  auto claims = claim_for_routing(conn, {.owner = "r", .lease_time = 60s, .limit = 1000, .max_expired_claims = 5});
  pqxx::work tx(conn);
  for (const auto& c : claims)
    REQUIRE(finish_routing(tx, c.lease, {{"rcpt@x.org", "rcpt@x.org", "maildir", "/tmp/m", std::nullopt}}));
  tx.commit();
}

ClaimOptions claim_options(int limit, std::optional<int> retry_limit = std::nullopt) {
  return {.owner = "d",
          .lease_time = 60s,
          .limit = limit,
          .max_expired_claims = 5,
          .reclaim_expired = false,
          .retry_limit = retry_limit};
}

// Defers every claimed message, due again at once.
void defer_all(pqxx::connection& conn, const std::vector<DeliveryClaim>& claims) {
  pqxx::work tx(conn);
  for (const auto& c : claims)
    REQUIRE(finish_delivery(tx, c.lease, {{c.tasks.at(0).delivery_id, DeliveryStatus::deferred, "4.2.2 full", 0s}}) ==
            FinishOutcome::deferred);
  tx.commit();
}

std::set<std::int64_t> ids_of(const std::vector<DeliveryClaim>& claims) {
  std::set<std::int64_t> ids;
  for (const auto& c : claims) ids.insert(c.lease.msg_id);
  return ids;
}

}  // namespace

TEST_CASE("fresh mail is claimed in fair order: another sender's message comes before a flood") {
  test::TestDatabase db;
  auto conn = db.connect();
  for (int i = 0; i < 40; ++i) receive(*conn, "flood@flood.test", "192.0.2.7");
  auto legit = receive(*conn, "someone@legit.test", "198.51.100.9");
  route_all(*conn);
  // In arrival (and routing) order it would be the 41st; in fair order it is
  // among the first few, its sender's clock being fresh.
  auto first = claim_for_delivery(*conn, claim_options(5), {"maildir"});
  REQUIRE(first.size() == 5);
  CHECK(ids_of(first).count(legit) == 1);
  for (const auto& c : first) CHECK(c.first_claim);
}

TEST_CASE("deferred mail due again takes at most retry_limit of a claim, fresh mail the rest") {
  test::TestDatabase db;
  auto conn = db.connect();
  for (int i = 0; i < 12; ++i) receive(*conn, "s" + std::to_string(i) + "@full.test", "192.0.2.7");
  route_all(*conn);
  auto failing = claim_for_delivery(*conn, claim_options(12), {"maildir"});
  REQUIRE(failing.size() == 12);
  defer_all(*conn, failing);
  const auto retries = ids_of(failing);

  std::set<std::int64_t> fresh;
  for (int i = 0; i < 12; ++i) fresh.insert(receive(*conn, "n" + std::to_string(i) + "@new.test", "198.51.100.9"));
  route_all(*conn);

  auto claim = claim_for_delivery(*conn, claim_options(10, 2), {"maildir"});
  REQUIRE(claim.size() == 10);
  int retried = 0;
  for (const auto& c : claim) {
    bool is_retry = retries.count(c.lease.msg_id) == 1;
    retried += is_retry;
    CHECK(c.first_claim == !is_retry);
    if (!is_retry) CHECK(fresh.count(c.lease.msg_id) == 1);
  }
  CHECK(retried == 2);

  // Without fresh mail the lane still takes only its share per claim.
  auto rest = claim_for_delivery(*conn, claim_options(10, 2), {"maildir"});
  CHECK(rest.size() == 6);  // the 4 fresh left and 2 retries
  auto only_retries = claim_for_delivery(*conn, claim_options(10, 2), {"maildir"});
  CHECK(only_retries.size() == 2);
  for (const auto& c : only_retries) CHECK(retries.count(c.lease.msg_id) == 1);
}

TEST_CASE("without a retry_limit deferred mail may fill the claim") {
  test::TestDatabase db;
  auto conn = db.connect();
  for (int i = 0; i < 6; ++i) receive(*conn, "s@full.test", "192.0.2.7");
  route_all(*conn);
  defer_all(*conn, claim_for_delivery(*conn, claim_options(6), {"maildir"}));
  CHECK(claim_for_delivery(*conn, claim_options(10), {"maildir"}).size() == 6);
}

TEST_CASE("a first claim that attempted nothing goes back to the fresh lane, ahead of deferred mail") {
  test::TestDatabase db;
  auto conn = db.connect();
  for (int i = 0; i < 4; ++i) receive(*conn, "s@full.test", "192.0.2.7");
  route_all(*conn);
  defer_all(*conn, claim_for_delivery(*conn, claim_options(4), {"maildir"}));
  auto busy = receive(*conn, "n@new.test", "198.51.100.9");
  route_all(*conn);

  // Its destination was busy: nothing attempted, nothing recorded.
  auto first = claim_for_delivery(*conn, claim_options(10, 1), {"maildir"});
  std::optional<DeliveryClaim> untried;
  for (const auto& c : first)
    if (c.lease.msg_id == busy) untried = c;
  REQUIRE(untried);
  REQUIRE(untried->first_claim);
  {
    pqxx::work tx(*conn);
    REQUIRE(finish_delivery(tx, untried->lease, {}, {}, untried->first_claim) == FinishOutcome::deferred);
    tx.commit();
  }
  CHECK(db.query("SELECT delivering_at IS NULL FROM messages WHERE id = " + std::to_string(busy))[0][0].as<bool>());
  CHECK(db.query("SELECT attempts FROM deliveries WHERE message_id = " + std::to_string(busy))[0][0].as<int>() == 0);
  // Deferred mail due again has only its lane's share; the untried message is fresh again.
  db.query("UPDATE messages SET next_attempt_at = now() - interval '1 hour' WHERE id <> " + std::to_string(busy));
  db.query("UPDATE deliveries SET next_attempt_at = now() - interval '1 hour' WHERE message_id <> " +
           std::to_string(busy));
  auto again = claim_for_delivery(*conn, claim_options(2, 1), {"maildir"});
  REQUIRE(again.size() == 2);
  CHECK(ids_of(again).count(busy) == 1);
  for (const auto& c : again) CHECK(c.first_claim == (c.lease.msg_id == busy));
}

TEST_CASE("a claim that attempted something stays in the retry lane") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, "s@x.test", "192.0.2.7");
  route_all(*conn);
  auto claim = claim_for_delivery(*conn, claim_options(1), {"maildir"});
  REQUIRE(claim.size() == 1);
  {
    pqxx::work tx(*conn);
    REQUIRE(finish_delivery(tx, claim[0].lease,
                            {{claim[0].tasks.at(0).delivery_id, DeliveryStatus::deferred, "4.2.2 full", 0s}}, {},
                            claim[0].first_claim) == FinishOutcome::deferred);
    tx.commit();
  }
  CHECK(db.query("SELECT delivering_at IS NOT NULL FROM messages WHERE id = " + std::to_string(id))[0][0].as<bool>());
}
