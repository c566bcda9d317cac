// The operator's bounce in every state, on a real database: what it fails, that
// the DSN exists at once (a new message in state 1, in the same transaction),
// that the message is DONE, and what it refuses and why.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "pg/body.h"
#include "pg/transitions.h"
#include "pg/transitions_bounce.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;
using common::MsgState;

namespace {

std::int64_t receive(pqxx::connection& conn, const std::string& from, const std::vector<std::string>& rcpts) {
  pqxx::work tx(conn);
  auto id = create_message(tx, {from, "192.0.2.1", "h", "test", rcpts});
  append_body_chunk(tx, id, 0, "Subject: hello\r\nFrom: <" + from + ">\r\n\r\nbody\r\n");
  commit_received(tx, id, 10);
  tx.commit();
  return id;
}

std::vector<BounceResult> bounce(pqxx::connection& conn, const std::vector<std::int64_t>& ids, bool force = false) {
  pqxx::work tx(conn);
  BounceOptions options;
  options.reason = "5.7.1 cancelled by the postmaster";
  options.reporting_mta = "mx.example.net";
  options.force = force;
  auto results = bounce_messages(tx, ids, options);
  tx.commit();
  return results;
}

int state_of(test::TestDatabase& db, std::int64_t id) {
  return db.query(fmt::format("SELECT state FROM messages WHERE id = {}", id))[0][0].as<int>();
}

std::string body_of(pqxx::connection& conn, std::int64_t id) {
  pqxx::read_transaction tx(conn);
  return read_body_start(tx, id, 1 << 20);
}

// Routes the message with one pending Maildir delivery per recipient.
void route(pqxx::connection& conn, const std::string& owner = "router-1") {
  for (const auto& c :
       claim_for_routing(conn, {.owner = owner, .lease_time = 60s, .limit = 100, .max_expired_claims = 5})) {
    std::vector<PlannedDelivery> plan;
    for (const auto& r : c.recipients) plan.push_back({r, r, "maildir", "/m/" + r, std::nullopt});
    pqxx::work tx(conn);
    REQUIRE(finish_routing(tx, c.lease, plan));
    tx.commit();
  }
}

}  // namespace

TEST_CASE("bounce of a message held before routing fails every recipient and sends the DSN at once") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, "sender@x.org", {"a@local.test", "b@local.test"});
  // As the router leaves a poison message: held in RECEIVED.
  db.query(fmt::format("UPDATE messages SET held = true, held_reason = 'routing failed 5 times' WHERE id = {}", id));
  auto r = bounce(*conn, {id});
  REQUIRE(r.size() == 1);
  CHECK(r[0].verdict == BounceVerdict::bounced);
  CHECK(r[0].from == MsgState::received);
  CHECK(r[0].held);
  CHECK(r[0].bounced == 2);
  CHECK(r[0].reported == 2);
  REQUIRE(r[0].dsn_id);
  CHECK(state_of(db, id) == 5);
  CHECK_FALSE(db.query(fmt::format("SELECT held FROM messages WHERE id = {}", id))[0][0].as<bool>());
  // The DSN is a new message waiting for the router, to the sender, from <>.
  auto dsn = db.query(
      fmt::format("SELECT m.state, m.envelope_from, r.address FROM messages m JOIN recipients r ON r.message_id = m.id "
                  "WHERE m.id = {}",
                  *r[0].dsn_id));
  REQUIRE(dsn.size() == 1);
  CHECK(dsn[0][0].as<int>() == 1);
  CHECK(dsn[0][1].as<std::string>().empty());
  CHECK(dsn[0][2].as<std::string>() == "sender@x.org");
  auto text = body_of(*conn, *r[0].dsn_id);
  CHECK(text.find("Final-Recipient: rfc822; a@local.test") != std::string::npos);
  CHECK(text.find("Final-Recipient: rfc822; b@local.test") != std::string::npos);
  CHECK(text.find("Status: 5.7.1") != std::string::npos);
  CHECK(text.find("Subject: hello") != std::string::npos);  // the original headers
  // The failures are recorded as deliveries, reported by that DSN.
  CHECK(db.query(fmt::format("SELECT count(*) FROM deliveries WHERE message_id = {} AND transport = 'bounce' "
                             "AND status = 'bounced' AND dsn_message_id = {}",
                             id, *r[0].dsn_id))[0][0]
            .as<int>() == 2);
  // A second bounce changes nothing and says so.
  CHECK(bounce(*conn, {id})[0].verdict == BounceVerdict::already_done);
}

TEST_CASE("bounce takes a message from a router; the router's finish then fails its lease check") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, "sender@x.org", {"a@local.test"});
  auto claims =
      claim_for_routing(*conn, {.owner = "router-1", .lease_time = 300s, .limit = 10, .max_expired_claims = 5});
  REQUIRE(claims.size() == 1);
  auto r = bounce(*conn, {id});
  CHECK(r[0].verdict == BounceVerdict::bounced);
  CHECK(r[0].from == MsgState::routing);
  CHECK(r[0].lease_owner == "router-1");
  CHECK(state_of(db, id) == 5);
  pqxx::work tx(*conn);
  CHECK_FALSE(finish_routing(tx, claims[0].lease, {{"a@local.test", "a@local.test", "maildir", "/m/a", std::nullopt}}));
}

TEST_CASE("bounce of a held routed message sends the DSN now, not after a release") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, "sender@x.org", {"a@local.test", "b@local.test"});
  route(*conn);
  db.query(
      fmt::format("UPDATE deliveries SET status = 'delivered', final_at = now() WHERE message_id = {} "
                  "AND recipient = 'a@local.test'",
                  id));
  db.query(
      fmt::format("UPDATE deliveries SET attempts = 2, last_error = '451 4.2.0 busy' WHERE message_id = {} "
                  "AND status = 'pending'",
                  id));
  db.query(fmt::format("UPDATE messages SET held = true WHERE id = {}", id));
  auto r = bounce(*conn, {id});
  CHECK(r[0].verdict == BounceVerdict::bounced);
  CHECK(r[0].from == MsgState::routed);
  CHECK(r[0].bounced == 1);  // only the pending one; a's copy was delivered
  REQUIRE(r[0].dsn_id);
  CHECK(state_of(db, id) == 5);
  auto text = body_of(*conn, *r[0].dsn_id);
  CHECK(text.find("Final-Recipient: rfc822; b@local.test") != std::string::npos);
  CHECK(text.find("a@local.test") == std::string::npos);
  CHECK(text.find("5.7.1 cancelled by the postmaster (last attempt: 451 4.2.0 busy)") != std::string::npos);
}

TEST_CASE("bounce refuses what it cannot change, per message, with the reason") {
  test::TestDatabase db;
  auto conn = db.connect();
  pqxx::work setup(*conn);
  auto receiving = create_message(setup, {"s@x.org", "192.0.2.1", "h", "test", {"a@local.test"}});
  setup.commit();
  auto finished = receive(*conn, "s@x.org", {"a@local.test"});
  route(*conn);
  // Every delivery final and nothing left to report: a deliverer only has to finish it.
  db.query(fmt::format("UPDATE deliveries SET status = 'delivered', final_at = now() WHERE message_id = {}", finished));
  auto r = bounce(*conn, {receiving, finished, 999999});
  REQUIRE(r.size() == 3);
  CHECK(r[0].verdict == BounceVerdict::receiving);
  CHECK(r[1].verdict == BounceVerdict::nothing_pending);
  CHECK(r[2].verdict == BounceVerdict::no_such_message);
  CHECK(state_of(db, receiving) == 0);
  CHECK(state_of(db, finished) == 3);
  CHECK(db.query("SELECT count(*) FROM messages")[0][0].as<int>() == 2);  // no DSN made
}

TEST_CASE("bounce leaves a message under a live delivery lease alone unless forced") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, "sender@x.org", {"a@local.test"});
  route(*conn);
  auto claims = claim_for_delivery(
      *conn, {.owner = "deliver-7", .lease_time = 300s, .limit = 10, .max_expired_claims = 5}, {"maildir"});
  REQUIRE(claims.size() == 1);
  auto refused = bounce(*conn, {id});
  CHECK(refused[0].verdict == BounceVerdict::live_lease);
  CHECK(refused[0].lease_owner == "deliver-7");
  CHECK_FALSE(refused[0].lease_expires.empty());
  CHECK(state_of(db, id) == 4);
  // A deliverer that died (lease expired) is no obstacle: the reaper would return it anyway.
  auto other = receive(*conn, "sender@x.org", {"b@local.test"});
  route(*conn);
  REQUIRE(claim_for_delivery(
              *conn, {.owner = "dead-deliverer", .lease_time = 300s, .limit = 10, .max_expired_claims = 5}, {"maildir"})
              .size() == 1);
  db.query(fmt::format("UPDATE messages SET lease_expires = now() - interval '1 second' WHERE id = {}", other));
  auto expired = bounce(*conn, {other});
  CHECK(expired[0].verdict == BounceVerdict::bounced);
  CHECK(expired[0].from == MsgState::delivering);
  CHECK(expired[0].lease_owner == "dead-deliverer");
  CHECK(state_of(db, other) == 5);
  auto forced = bounce(*conn, {id}, true);
  CHECK(forced[0].verdict == BounceVerdict::bounced);
  CHECK(forced[0].dsn_id);
  CHECK(state_of(db, id) == 5);
  // The worker's own finish now loses: it cannot overwrite the bounce.
  pqxx::work tx(*conn);
  CHECK(finish_delivery(tx, claims[0].lease,
                        {{claims[0].tasks[0].delivery_id, DeliveryStatus::delivered, "250 ok", {}}}) ==
        FinishOutcome::lost_lease);
}

TEST_CASE("bounce of a message from the null sender sends no DSN and says so") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = receive(*conn, "", {"a@local.test"});
  auto r = bounce(*conn, {id});
  CHECK(r[0].verdict == BounceVerdict::bounced);
  CHECK(r[0].null_sender);
  CHECK_FALSE(r[0].dsn_id);
  CHECK(state_of(db, id) == 5);
  CHECK(db.query("SELECT count(*) FROM messages")[0][0].as<int>() == 1);
}
