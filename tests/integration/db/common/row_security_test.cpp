// The attacks of issue 15 item 1, performed as the real roles against
// schema/018_row_security.sql: a compromised listener adding itself as a
// recipient of other mail or reading it, a deliverer or reaper rewriting
// deliveries, a router writing outside its routing step. Each must be refused
// (an error, or no row touched where row-level security filters), while the
// daemons' own transitions still work under the same roles.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "pg/auth_users.h"
#include "pg/body.h"
#include "pg/directory.h"
#include "pg/operator_actions.h"
#include "pg/transitions.h"
#include "pg/transitions_generated.h"
#include "role_connection.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;
using test::connect_as;
using test::exec_as;
using test::query_as;

namespace {

constexpr const char* kSpy = "spy@attacker.example";

int state_of(test::TestDatabase& db, std::int64_t id) {
  return db.query(fmt::format("SELECT state FROM messages WHERE id = {}", id))[0][0].as<int>();
}

int spy_recipients(test::TestDatabase& db) {
  return db.query(fmt::format("SELECT count(*) FROM recipients WHERE address = '{}'", kSpy))[0][0].as<int>();
}

// A receipt in state 0 created by the given listener connection.
std::int64_t receiving_as(pqxx::connection& conn) {
  pqxx::work tx(conn);
  auto id = create_message(tx, {"s@example.org", "192.0.2.7", "client.example", "mx", {"u@example.net"}});
  append_body_chunk(tx, id, 0, "Subject: hi\r\n\r\n");
  tx.commit();
  return id;
}

// A message the owner pushed to `state`; client NULL makes it look generated.
std::int64_t message_in_state(test::TestDatabase& db, int state, const char* client = "'192.0.2.9'") {
  auto id =
      db.query(fmt::format("INSERT INTO messages (envelope_from, client_addr) VALUES ('s@example.org', {}) "
                           "RETURNING id",
                           client))[0][0]
          .as<std::int64_t>();
  db.query(fmt::format("INSERT INTO recipients VALUES ({}, 0, 'u@example.net')", id));
  db.query(fmt::format("INSERT INTO body_chunks VALUES ({}, 0, 'secret'::bytea)", id));
  for (int s = 1; s <= state; ++s) db.query(fmt::format("UPDATE messages SET state = {} WHERE id = {}", s, id));
  return id;
}

std::int64_t add_delivery(test::TestDatabase& db, std::int64_t msg_id, const std::string& rcpt) {
  return db
      .query(fmt::format("INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination) "
                         "VALUES ({0}, '{1}', '{1}', 'maildir', '/var/mail/u') RETURNING id",
                         msg_id, rcpt))[0][0]
      .as<std::int64_t>();
}

std::string delivery_field(test::TestDatabase& db, std::int64_t delivery_id, const char* column) {
  return db.query(fmt::format("SELECT {} FROM deliveries WHERE id = {}", column, delivery_id))[0][0].as<std::string>();
}

ClaimOptions opts(const std::string& owner) {
  return {.owner = owner, .lease_time = 60s, .limit = 10, .max_expired_claims = 5};
}

}  // namespace

TEST_CASE("a listener cannot add a recipient to any existing message") {
  test::TestDatabase db;
  auto mx1 = connect_as(db, "wsmtp_listener");
  auto mx2 = connect_as(db, "wsmtp_listener", "t_wsmtp_listener_mx2");
  auto own_receiving = receiving_as(*mx1);
  auto other_receiving = receiving_as(*mx2);
  auto waiting = message_in_state(db, 1);      // what LISTEN wsmtp_route announces
  auto dsn = message_in_state(db, 1, "NULL");  // generated: no client, no owner
  auto routed = message_in_state(db, 3);
  db.query(fmt::format("UPDATE messages SET held = true WHERE id = {}", routed));

  for (auto id : {own_receiving, other_receiving, waiting, dsn, routed}) {
    INFO("message " << id);
    CHECK_THROWS_AS(exec_as(*mx1, fmt::format("INSERT INTO recipients VALUES ({}, 99, '{}')", id, kSpy)),
                    pqxx::insufficient_privilege);
    // The functions that write recipients only create: an existing id fails.
    CHECK_THROWS_AS(
        exec_as(*mx1, fmt::format("SELECT begin_receipt({}, '', '', 'h', 'mx', ARRAY['{}'], ARRAY['d:spy.example'])",
                                  id, kSpy)),
        pqxx::unique_violation);
    CHECK_THROWS_AS(exec_as(*mx1, fmt::format("SELECT receive_messages(ARRAY[{}]::bigint[], ARRAY[''], ARRAY[''], "
                                              "ARRAY[''], ARRAY['h'], ARRAY['mx'], ARRAY[1]::bigint[], "
                                              "ARRAY[1]::bigint[], ARRAY[99], ARRAY['{}'], ARRAY[]::bigint[], "
                                              "ARRAY[]::text[], ARRAY['x'::bytea])",
                                              id, kSpy)),
                    pqxx::unique_violation);
  }
  // receive_batch would let it pick its own routing order; only receive_messages may call it.
  CHECK_THROWS_AS(exec_as(*mx1, fmt::format("SELECT receive_batch(ARRAY[{}]::bigint[], ARRAY[0]::bigint[], "
                                            "ARRAY[''], ARRAY[''], ARRAY['h'], ARRAY['mx'], ARRAY[1]::bigint[], "
                                            "ARRAY[1]::bigint[], ARRAY[0], ARRAY['{}'], ARRAY[]::bigint[], "
                                            "ARRAY[]::text[], ARRAY['x'::bytea])",
                                            waiting + 1000, kSpy)),
                  pqxx::insufficient_privilege);
  CHECK(spy_recipients(db) == 0);

  // Its own receipts still work: streamed (begin_receipt) and whole (receive_messages).
  {
    pqxx::work tx(*mx1);
    append_body_chunk(tx, own_receiving, 1, "body\r\n");
    CHECK(commit_received(tx, own_receiving, 21));
    tx.commit();
  }
  CHECK(state_of(db, own_receiving) == 1);
  auto whole = query_as(*mx1, "SELECT reserve_message_ids(1)")[0][0].as<std::int64_t>();
  CHECK(query_as(*mx1, fmt::format("SELECT receive_messages(ARRAY[{}]::bigint[], ARRAY['s@example.org'], "
                                   "ARRAY['192.0.2.7'], ARRAY['192.0.2.7'], ARRAY['h'], ARRAY['mx'], "
                                   "ARRAY[4]::bigint[], ARRAY[1]::bigint[], ARRAY[0], ARRAY['u@example.net'], "
                                   "ARRAY[1]::bigint[], ARRAY['d:example.org'], ARRAY['body'::bytea])",
                                   whole))[0][0]
            .as<int>() == 1);
  CHECK(db.query(fmt::format("SELECT receipt_owner FROM messages WHERE id = {}", whole))[0][0].as<std::string>() ==
        "t_wsmtp_listener");
}

TEST_CASE("a listener sees and changes only its own receipts") {
  test::TestDatabase db;
  auto mx1 = connect_as(db, "wsmtp_listener");
  auto mx2 = connect_as(db, "wsmtp_listener", "t_wsmtp_listener_mx2");
  auto mine = receiving_as(*mx1);
  auto theirs = receiving_as(*mx2);
  auto waiting = message_in_state(db, 1);
  auto dsn = message_in_state(db, 1, "NULL");

  // Nothing of other mail is visible: not the messages, their recipients or bodies.
  auto visible = query_as(*mx1, "SELECT id FROM messages");
  REQUIRE(visible.size() == 1);
  CHECK(visible[0][0].as<std::int64_t>() == mine);
  CHECK(query_as(*mx1, fmt::format("SELECT envelope_from FROM messages WHERE id IN ({}, {}, {})", theirs, waiting, dsn))
            .empty());
  CHECK_THROWS_AS(query_as(*mx1, "SELECT address FROM recipients"), pqxx::insufficient_privilege);
  CHECK_THROWS_AS(query_as(*mx1, "SELECT data FROM body_chunks"), pqxx::insufficient_privilege);

  // Another host's receipt in progress: no chunk, no commit, no discard.
  CHECK_THROWS_AS(exec_as(*mx1, fmt::format("INSERT INTO body_chunks VALUES ({}, 1, 'injected'::bytea)", theirs)),
                  pqxx::insufficient_privilege);
  {
    pqxx::work tx(*mx1);
    CHECK_FALSE(commit_received(tx, theirs, 1));
    CHECK_FALSE(discard_receiving(tx, theirs));
    tx.commit();
  }
  CHECK(state_of(db, theirs) == 0);
  CHECK(db.query(fmt::format("SELECT count(*) FROM body_chunks WHERE message_id = {}", theirs))[0][0].as<int>() == 1);

  // Its own receipt: only the commit's columns, and no new message outside begin_receipt.
  CHECK_THROWS_AS(exec_as(*mx1, fmt::format("UPDATE messages SET envelope_from = '{}' WHERE id = {}", kSpy, mine)),
                  pqxx::insufficient_privilege);
  CHECK_THROWS_AS(exec_as(*mx1, fmt::format("UPDATE messages SET receipt_owner = 'x' WHERE id = {}", mine)),
                  pqxx::insufficient_privilege);
  CHECK_THROWS_AS(exec_as(*mx1, "INSERT INTO messages (envelope_from) VALUES ('s@example.org')"),
                  pqxx::insufficient_privilege);

  // A committed receipt stays visible to its listener in any state: a commit
  // whose answer was lost is settled by reading it back (PgStore::resolve_in_doubt).
  {
    pqxx::work tx(*mx1);
    CHECK(commit_received(tx, mine, 1));
    tx.commit();
  }
  db.query(fmt::format("UPDATE messages SET state = 2 WHERE id = {}", mine));
  CHECK(query_as(*mx1, fmt::format("SELECT state FROM messages WHERE id = {}", mine))[0][0].as<int>() == 2);
  {
    pqxx::work tx(*mx2);
    CHECK(discard_receiving(tx, theirs));
    tx.commit();
  }
  CHECK(db.query(fmt::format("SELECT 1 FROM messages WHERE id = {}", theirs)).empty());
}

TEST_CASE("the deliverer changes only the attempt columns of deliveries it is delivering") {
  test::TestDatabase db;
  auto deliverer = connect_as(db, "wsmtp_deliver");
  auto claimed_msg = message_in_state(db, 3);
  auto claimed = add_delivery(db, claimed_msg, "u@example.net");
  auto waiting_msg = message_in_state(db, 3);  // not due, so not claimed: nobody's lease
  auto waiting = add_delivery(db, waiting_msg, "v@example.net");
  db.query(
      fmt::format("UPDATE messages SET next_attempt_at = now() + interval '1 hour' WHERE id = {0}; "
                  "UPDATE deliveries SET next_attempt_at = now() + interval '1 hour' WHERE id = {1}",
                  waiting_msg, waiting));
  auto claims = claim_for_delivery(*deliverer, opts("deliver-a"), {"maildir"});
  REQUIRE(claims.size() == 1);
  REQUIRE(claims[0].lease.msg_id == claimed_msg);

  // A delivery it does not hold under a lease: filtered out, unchanged.
  CHECK(exec_as(*deliverer, fmt::format("UPDATE deliveries SET status = 'delivered', final_at = now() WHERE id = {}",
                                        waiting)) == 0);
  CHECK(delivery_field(db, waiting, "status") == "pending");
  // Where mail goes is the router's decision, even under its own lease.
  for (const char* column : {"recipient", "destination", "transport", "envelope_from_override", "prepend_headers"})
    CHECK_THROWS_AS(exec_as(*deliverer, fmt::format("UPDATE deliveries SET {} = '{}' WHERE id = {}", column,
                                                    column == std::string("transport") ? "relay" : kSpy, claimed)),
                    pqxx::insufficient_privilege);
  CHECK(delivery_field(db, claimed, "recipient") == "u@example.net");
  CHECK_THROWS_AS(
      exec_as(*deliverer, fmt::format("UPDATE messages SET envelope_from = '{}' WHERE id = {}", kSpy, claimed_msg)),
      pqxx::insufficient_privilege);
  CHECK_THROWS_AS(query_as(*deliverer, "SELECT address FROM recipients"), pqxx::insufficient_privilege);
  // Its DSNs are generated messages; a received message gets no recipient from it.
  CHECK_THROWS_AS(exec_as(*deliverer, fmt::format("INSERT INTO recipients VALUES ({}, 9, '{}')", waiting_msg, kSpy)),
                  pqxx::insufficient_privilege);

  // Its own leased delivery: recorded, and the bounce's DSN linked after 4 -> 5.
  {
    pqxx::work tx(*deliverer);
    CHECK(finish_delivery(tx, claims[0].lease, {{claimed, DeliveryStatus::bounced, "550 no", 0s}}) ==
          FinishOutcome::done);
    tx.commit();
  }
  CHECK(delivery_field(db, claimed, "status") == "bounced");
  CHECK_FALSE(db.query(fmt::format("SELECT dsn_message_id FROM deliveries WHERE id = {}", claimed))[0][0].is_null());
  // Finished now: out of its hands.
  CHECK(exec_as(*deliverer,
                fmt::format("UPDATE deliveries SET status = 'pending', final_at = NULL WHERE id = {}", claimed)) == 0);
  CHECK(delivery_field(db, claimed, "status") == "bounced");
}

TEST_CASE("the reaper only bounces pending deliveries of routed messages") {
  test::TestDatabase db;
  auto reaper = connect_as(db, "wsmtp_reaper");
  auto old_msg = message_in_state(db, 3);
  auto old = add_delivery(db, old_msg, "u@example.net");
  db.query(fmt::format("UPDATE messages SET received_at = now() - interval '10 days' WHERE id = {}", old_msg));
  auto delivering_msg = message_in_state(db, 4);
  auto delivering = add_delivery(db, delivering_msg, "v@example.net");

  CHECK_THROWS_AS(exec_as(*reaper, fmt::format("UPDATE deliveries SET status = 'delivered', final_at = now() "
                                               "WHERE id = {}",
                                               old)),
                  pqxx::insufficient_privilege);
  CHECK_THROWS_AS(exec_as(*reaper, fmt::format("UPDATE deliveries SET destination = '/tmp/x' WHERE id = {}", old)),
                  pqxx::insufficient_privilege);
  CHECK(exec_as(*reaper, fmt::format("UPDATE deliveries SET status = 'bounced', final_at = now() WHERE id = {}",
                                     delivering)) == 0);
  CHECK(delivery_field(db, delivering, "status") == "pending");
  CHECK_THROWS_AS(query_as(*reaper, "SELECT address FROM recipients"), pqxx::insufficient_privilege);
  CHECK_THROWS_AS(
      exec_as(*reaper, fmt::format("UPDATE messages SET envelope_from = '{}' WHERE id = {}", kSpy, old_msg)),
      pqxx::insufficient_privilege);

  CHECK(expire_queue_lifetime(*reaper, 24h, 100) == 1);
  CHECK(delivery_field(db, old, "status") == "bounced");
}

TEST_CASE("the router writes deliveries and recipients only within its own work") {
  test::TestDatabase db;
  auto router = connect_as(db, "wsmtp_router");
  auto waiting = message_in_state(db, 1);
  auto delivering = message_in_state(db, 4);
  auto pending = add_delivery(db, delivering, "u@example.net");

  for (auto id : {waiting, delivering})
    CHECK_THROWS_AS(exec_as(*router, fmt::format("INSERT INTO deliveries (message_id, recipient, original_rcpt, "
                                                 "transport, destination) VALUES ({0}, '{1}', '{1}', 'relay', 'p')",
                                                 id, kSpy)),
                    pqxx::insufficient_privilege);
  CHECK_THROWS_AS(exec_as(*router, fmt::format("INSERT INTO recipients VALUES ({}, 9, '{}')", waiting, kSpy)),
                  pqxx::insufficient_privilege);
  CHECK(spy_recipients(db) == 0);
  // Only a bounced delivery's DSN link, never a pending one's.
  CHECK(exec_as(*router, fmt::format("UPDATE deliveries SET dsn_message_id = 1 WHERE id = {}", pending)) == 0);
  CHECK_THROWS_AS(
      exec_as(*router, fmt::format("UPDATE messages SET envelope_from = '{}' WHERE id = {}", kSpy, waiting)),
      pqxx::insufficient_privilege);

  // Its generated messages take recipients and bodies.
  pqxx::work tx(*router);
  auto reply = create_generated_message(tx, {"", "", "router", "router", {"s@example.org"}}, "Subject: away\r\n\r\n",
                                        "auto-reply", waiting);
  tx.commit();
  CHECK(db.query(fmt::format("SELECT count(*) FROM recipients WHERE message_id = {}", reply))[0][0].as<int>() == 1);
}

TEST_CASE("a listener reads of the directory only whether an address exists") {
  test::TestDatabase db;
  auto mx1 = connect_as(db, "wsmtp_listener");
  {
    auto admin = connect_as(db, "wsmtp_admin");
    pqxx::work tx(*admin);
    REQUIRE(add_domain(tx, "example.net"));
    REQUIRE(add_mailbox(tx, "u@example.net", "example.net", "/var/mail/u"));
    REQUIRE(add_alias(tx, "a@example.net", "example.net", "private@elsewhere.example"));
    REQUIRE(set_auth_user(tx, "alice", "secret"));
    tx.commit();
  }
  for (const char* sql :
       {"SELECT target FROM aliases", "SELECT maildir FROM mailboxes", "SELECT transport FROM mailboxes",
        "SELECT quota_bytes FROM mailboxes", "SELECT target FROM catchalls", "SELECT owner FROM lists",
        "SELECT member FROM list_members", "SELECT * FROM aliases"}) {
    INFO(sql);
    CHECK_THROWS_AS(query_as(*mx1, sql), pqxx::insufficient_privilege);
  }
  // What RCPT and AUTH need still works.
  pqxx::work tx(*mx1);
  CHECK(check_recipient(tx, "u@example.net", "example.net") == common::RecipientVerdict::known_local);
  CHECK(check_recipient(tx, "a@example.net", "example.net") == common::RecipientVerdict::known_local);
  CHECK(check_recipient(tx, "nobody@example.net", "example.net") == common::RecipientVerdict::unknown_local);
  CHECK(verify_auth_user(tx, "alice", "secret"));
}

// Schema 024: the milters' changes go through edit_receipt, which a listener
// may run only on its own receipts in state 0. Its attack surface is the same
// as 018's: no recipient, sender or hold for another host's receipt, or for
// any message already committed.
TEST_CASE("a listener applies milter changes only to its own receipts in state 0") {
  test::TestDatabase db;
  auto mx1 = connect_as(db, "wsmtp_listener");
  auto mx2 = connect_as(db, "wsmtp_listener", "t_wsmtp_listener_mx2");
  auto mine = receiving_as(*mx1);
  auto theirs = receiving_as(*mx2);
  auto waiting = message_in_state(db, 1);
  const auto spy_edit = [&](std::int64_t id) {
    return fmt::format("SELECT edit_receipt({}, '{}', ARRAY['{}'], 'held', 0, 0)", id, kSpy, kSpy);
  };
  CHECK_THROWS_AS(exec_as(*mx1, spy_edit(theirs)), pqxx::sql_error);
  CHECK_THROWS_AS(exec_as(*mx1, spy_edit(waiting)), pqxx::sql_error);
  CHECK(spy_recipients(db) == 0);
  CHECK(db.query(fmt::format("SELECT count(*) FROM body_chunks WHERE message_id IN ({}, {})", theirs, waiting))[0][0]
            .as<int>() == 2);
  // Its own receipt: sender, recipients, hold and a replaced body, then the commit.
  exec_as(*mx1, fmt::format("INSERT INTO body_chunks VALUES ({}, 1, 'new body'::bytea)", mine));
  exec_as(*mx1, fmt::format("SELECT edit_receipt({}, 'bounces@example.org', ARRAY['a@example.net', 'b@example.net'], "
                            "'milter m: spam', 0, 0)",
                            mine));
  CHECK_THROWS_AS(exec_as(*mx1, fmt::format("SELECT edit_receipt({}, NULL, ARRAY[]::text[], NULL, 0, -1)", mine)),
                  pqxx::sql_error);
  {
    pqxx::work tx(*mx1);
    CHECK(commit_received(tx, mine, 8));
    tx.commit();
  }
  auto row = db.query(fmt::format("SELECT envelope_from, held, held_reason, state FROM messages WHERE id = {}", mine));
  CHECK(row[0][0].as<std::string>() == "bounces@example.org");
  CHECK(row[0][1].as<bool>());
  CHECK(row[0][2].as<std::string>() == "milter m: spam");
  CHECK(row[0][3].as<int>() == 1);
  CHECK(db.query(fmt::format("SELECT string_agg(address, ',' ORDER BY seq) FROM recipients WHERE message_id = {}",
                             mine))[0][0]
            .as<std::string>() == "a@example.net,b@example.net");
  CHECK(db.query(fmt::format("SELECT string_agg(convert_from(data, 'UTF8'), '' ORDER BY seq) FROM body_chunks "
                             "WHERE message_id = {}",
                             mine))[0][0]
            .as<std::string>() == "new body");
  // Once committed, no more changes.
  CHECK_THROWS_AS(exec_as(*mx1, spy_edit(mine)), pqxx::sql_error);
}
