// Least privilege (schema/005_roles.sql, 018_row_security.sql): each daemon's transitions run under
// a login role that is only a member of that daemon's group role, and the same
// roles are refused (an error, or no row touched where row-level security
// filters) outside their rights.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "pg/body.h"
#include "pg/cleanup.h"
#include "pg/directory.h"
#include "pg/operator_actions.h"
#include "router/db/queue.h"
#include "pg/transitions.h"
#include "pg/transitions_bounce.h"
#include "role_connection.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using common::MsgState;
using namespace std::chrono_literals;
using test::connect_as;
using test::exec_as;

namespace {

int state_of(test::TestDatabase& db, std::int64_t id) {
  return db.query(fmt::format("SELECT state FROM messages WHERE id = {}", id))[0][0].as<int>();
}

bool exists(test::TestDatabase& db, std::int64_t id) {
  return !db.query(fmt::format("SELECT 1 FROM messages WHERE id = {}", id)).empty();
}

std::int64_t receive_as(pqxx::connection& conn, const std::string& rcpt) {
  pqxx::work tx(conn);
  auto id = create_message(tx, {"s@example.org", "192.0.2.7", "client.example", "mx1", {rcpt}});
  append_body_chunk(tx, id, 0, "Subject: hi\r\n\r\nbody\r\n");
  REQUIRE(commit_received(tx, id, 20));
  tx.commit();
  return id;
}

// A message pushed by the owner to the given state (for refusal tests).
std::int64_t message_in_state(test::TestDatabase& db, int state) {
  auto id = db.query(
                  "INSERT INTO messages (envelope_from, client_addr) VALUES ('s@example.org', '192.0.2.9') "
                  "RETURNING id")[0][0]
                .as<std::int64_t>();
  const char* steps[] = {"", "state = 1", "state = 2", "state = 3", "state = 4", "state = 5"};
  for (int s = 1; s <= state; ++s) db.query(fmt::format("UPDATE messages SET {} WHERE id = {}", steps[s], id));
  return id;
}

ClaimOptions opts(const std::string& owner) {
  return {.owner = owner, .lease_time = 60s, .limit = 10, .max_expired_claims = 5};
}

}  // namespace

TEST_CASE("each daemon's transitions work under its own role") {
  test::TestDatabase db;
  auto listener = connect_as(db, "wsmtp_listener");
  auto router = connect_as(db, "wsmtp_router");
  auto deliverer = connect_as(db, "wsmtp_deliver");
  auto reaper = connect_as(db, "wsmtp_reaper");
  auto admin = connect_as(db, "wsmtp_admin");

  {  // the operator sets up the directory
    pqxx::work tx(*admin);
    REQUIRE(add_domain(tx, "example.net"));
    REQUIRE(add_mailbox(tx, "u@example.net", "example.net", "/var/mail/u"));
    tx.commit();
  }

  // listener: recipient check, receipt 0->1, and discarding an aborted receipt.
  {
    pqxx::work tx(*listener);
    CHECK(check_recipient(tx, "u@example.net", "example.net") == common::RecipientVerdict::known_local);
    tx.commit();
  }
  auto id = receive_as(*listener, "u@example.net");
  CHECK(state_of(db, id) == 1);
  {
    pqxx::work tx(*listener);
    auto aborted = create_message(tx, {"s@example.org", "192.0.2.7", "c", "mx1", {"u@example.net"}});
    append_body_chunk(tx, aborted, 0, "partial");
    tx.commit();
    pqxx::work tx2(*listener);
    CHECK(discard_receiving(tx2, aborted));
    tx2.commit();
    CHECK_FALSE(exists(db, aborted));
  }

  // router: 1->2, reads the body, 2->3 with a plan, generates an auto-reply.
  auto routing = claim_for_routing(*router, opts("router-a"));
  REQUIRE(routing.size() == 1);
  {
    pqxx::work tx(*router);
    std::string body;
    read_body(tx, id, [&](std::string_view chunk) { body += chunk; });
    CHECK(body.find("Subject: hi") == 0);
    CHECK(routing_backlog(tx) == 0);
    REQUIRE(finish_routing(tx, routing[0].lease, {{"u@example.net", "u@example.net", "maildir", "/var/mail/u", {}}}));
    auto reply = create_generated_message(tx, {"", "", "router-a", "router-a", {"s@example.org"}},
                                          "Subject: away\r\n\r\n", "auto-reply", 1);
    CHECK(reply > id);
    tx.commit();
  }
  CHECK(state_of(db, id) == 3);

  // deliverer: 3->4, 4->5 with one bounce, which queues a DSN (a generated message).
  db.query(
      fmt::format("INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination) "
                  "VALUES ({}, 'x@example.net', 'x@example.net', 'maildir', '/var/mail/x')",
                  id));
  auto claims = claim_for_delivery(*deliverer, opts("deliver-a"), {"maildir"});
  REQUIRE(claims.size() == 1);
  REQUIRE(claims[0].tasks.size() == 2);
  {
    pqxx::work tx(*deliverer);
    std::vector<DeliveryResult> results{{claims[0].tasks[0].delivery_id, DeliveryStatus::delivered, "ok", 0s},
                                        {claims[0].tasks[1].delivery_id, DeliveryStatus::bounced, "550 no", 0s}};
    CHECK(finish_delivery(tx, claims[0].lease, results) == FinishOutcome::done);
    tx.commit();
  }
  CHECK(state_of(db, id) == 5);
  CHECK(db.query("SELECT count(*) FROM messages WHERE state = 1 AND envelope_from = ''")[0][0].as<int>() == 2);

  // reaper: expired leases back (2->1), aborted and finished messages deleted.
  auto stale = message_in_state(db, 2);
  db.query(
      fmt::format("UPDATE messages SET lease_owner = 'gone', lease_token = gen_random_uuid(), "
                  "lease_expires = now() - interval '1 second' WHERE id = {}",
                  stale));
  CHECK(reset_expired_leases(*reaper, MsgState::routing, 5, 100).reset == 1);
  CHECK(state_of(db, stale) == 1);
  auto aborted = message_in_state(db, 0);
  CHECK(delete_aborted(*reaper, 0s, 100) == 1);
  CHECK_FALSE(exists(db, aborted));
  CHECK(delete_done(*reaper, 0s, 100) == 1);
  CHECK_FALSE(exists(db, id));
  CHECK(expire_queue_lifetime(*reaper, 60s, 100) == 0);

  // admin: hold, release, bounce and delete any message.
  {
    pqxx::work tx(*listener);
    auto fresh = create_message(tx, {"s@example.org", "192.0.2.1", "h", "l", {"u@example.net"}});
    commit_received(tx, fresh, 1);
    tx.commit();
    pqxx::work bounce_tx(*admin);
    auto bounced = bounce_messages(bounce_tx, {fresh}, {});
    CHECK(bounced[0].verdict == BounceVerdict::bounced);
    CHECK(bounced[0].dsn_id);
    bounce_tx.commit();
    CHECK(state_of(db, fresh) == 5);
  }
  {
    pqxx::work tx(*admin);
    CHECK(hold_messages(tx, {stale}, "inspect").size() == 1);
    CHECK(release_messages(tx, {stale}).size() == 1);
    CHECK(delete_messages(tx, {stale}).size() == 1);
    tx.commit();
  }
  CHECK_FALSE(exists(db, stale));
}

TEST_CASE("the listener role is refused outside its rights") {
  test::TestDatabase db;
  auto listener = connect_as(db, "wsmtp_listener");
  auto done = message_in_state(db, 5);
  auto received = message_in_state(db, 1);

  // Row-level security: a message past state 0 is invisible to its DELETE and UPDATE.
  CHECK(exec_as(*listener, fmt::format("DELETE FROM messages WHERE id = {}", done)) == 0);
  CHECK(exists(db, done));
  {
    pqxx::work tx(*listener);
    CHECK_FALSE(discard_receiving(tx, received));
    tx.commit();
  }
  CHECK(exec_as(*listener, fmt::format("UPDATE messages SET state = 2 WHERE id = {}", received)) == 0);
  CHECK(state_of(db, received) == 1);

  CHECK_THROWS_AS(exec_as(*listener, "UPDATE deliveries SET status = 'delivered'"), pqxx::insufficient_privilege);
  CHECK_THROWS_AS(exec_as(*listener, "SELECT * FROM body_chunks"), pqxx::insufficient_privilege);
  CHECK_THROWS_AS(exec_as(*listener, "DELETE FROM recipients"), pqxx::insufficient_privilege);
  CHECK_THROWS_AS(exec_as(*listener, "INSERT INTO domains (name) VALUES ('evil.example')"),
                  pqxx::insufficient_privilege);
  // It writes bodies only into receipts still in progress.
  CHECK_THROWS_AS(exec_as(*listener, fmt::format("INSERT INTO body_chunks VALUES ({}, 9, '\\x41'::bytea)", received)),
                  pqxx::insufficient_privilege);
}

// Issue 13: mail to postmaster with nowhere to go is held by the router (2->1).
TEST_CASE("the router may hold a message it claimed") {
  test::TestDatabase db;
  auto listener = connect_as(db, "wsmtp_listener");
  auto router = connect_as(db, "wsmtp_router");
  auto id = receive_as(*listener, "postmaster@example.net");
  auto claims = claim_for_routing(*router, opts("router-a"));
  REQUIRE(claims.size() == 1);
  pqxx::work tx(*router);
  CHECK(hold_unroutable(tx, claims[0].lease, "mail to postmaster: nowhere to go"));
  tx.commit();
  CHECK(state_of(db, id) == 1);
  CHECK(db.query("SELECT held_reason FROM messages WHERE held AND lease_token IS NULL")[0][0].as<std::string>() ==
        "mail to postmaster: nowhere to go");
}

TEST_CASE("router, deliverer and reaper roles are refused outside their rights") {
  test::TestDatabase db;
  auto router = connect_as(db, "wsmtp_router");
  auto deliverer = connect_as(db, "wsmtp_deliver");
  auto reaper = connect_as(db, "wsmtp_reaper");
  auto received = message_in_state(db, 1);
  auto routed = message_in_state(db, 3);
  db.query(fmt::format("INSERT INTO body_chunks VALUES ({}, 0, '\\x41'::bytea)", received));

  for (auto* conn : {router.get(), deliverer.get()}) {
    CHECK_THROWS_AS(exec_as(*conn, fmt::format("DELETE FROM messages WHERE id = {}", received)),
                    pqxx::insufficient_privilege);
    CHECK_THROWS_AS(exec_as(*conn, "UPDATE body_chunks SET data = '\\x42'::bytea"), pqxx::insufficient_privilege);
    CHECK_THROWS_AS(exec_as(*conn, "DELETE FROM body_chunks"), pqxx::insufficient_privilege);
    CHECK_THROWS_AS(exec_as(*conn, "SELECT * FROM auth_users"), pqxx::insufficient_privilege);
    // No body for a message it did not generate.
    CHECK_THROWS_AS(exec_as(*conn, fmt::format("INSERT INTO body_chunks VALUES ({}, 1, '\\x41'::bytea)", received)),
                    pqxx::insufficient_privilege);
  }
  CHECK_THROWS_AS(exec_as(*router, "UPDATE deliveries SET status = 'delivered'"), pqxx::insufficient_privilege);
  // The router cannot move a routed message on; the deliverer cannot route one.
  CHECK(exec_as(*router, fmt::format("UPDATE messages SET state = 4 WHERE id = {}", routed)) == 0);
  CHECK(exec_as(*deliverer, fmt::format("UPDATE messages SET state = 2 WHERE id = {}", received)) == 0);
  CHECK_THROWS_AS(exec_as(*deliverer, "DELETE FROM deliveries"), pqxx::insufficient_privilege);

  CHECK_THROWS_AS(exec_as(*reaper, "SELECT * FROM body_chunks"), pqxx::insufficient_privilege);
  CHECK(exec_as(*reaper, fmt::format("DELETE FROM messages WHERE id = {}", routed)) == 0);
  CHECK(state_of(db, routed) == 3);
  CHECK(state_of(db, received) == 1);
}
