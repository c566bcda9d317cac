// Retries and bounces against a real PostgreSQL: deferral with backoff (4->3 and
// the next attempt time), permanent failures and queue-lifetime expiry (4->5
// with exactly one RFC 3464 DSN per message, router refusals included, sent
// from <> and never to <>), and the one optional delay warning.
#include <catch2/catch.hpp>

#include "pg/body.h"
#include "pg/transitions.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;

namespace {

const char* kBody =
    "From: Sender <s@x.org>\r\nSubject: quarterly report\r\nMessage-ID: <orig-1@x.org>\r\n\r\nbody line\r\n";

PlannedDelivery plan(const std::string& rcpt, const std::string& orig, const std::string& transport,
                     const std::string& dest, std::optional<std::string> bounce = std::nullopt) {
  PlannedDelivery p;
  p.recipient = rcpt;
  p.original_rcpt = orig;
  p.transport = transport;
  p.destination = dest;
  p.bounce_reason = std::move(bounce);
  return p;
}

// A message routed to `plan`, claimed for delivery; returns the claim.
DeliveryClaim routed_and_claimed(pqxx::connection& conn, const std::string& from,
                                 const std::vector<PlannedDelivery>& deliveries) {
  {
    pqxx::work tx(conn);
    std::vector<std::string> rcpts;
    for (const auto& p : deliveries) rcpts.push_back(p.original_rcpt);
    auto id = create_message(tx, {from, "192.0.2.7", "client.example", "test", rcpts});
    append_body_chunk(tx, id, 0, kBody);
    REQUIRE(commit_received(tx, id, static_cast<std::int64_t>(std::string(kBody).size())));
    tx.commit();
  }
  auto routing = claim_for_routing(conn, {.owner = "router", .lease_time = 60s, .limit = 1, .max_expired_claims = 5});
  REQUIRE(routing.size() == 1);
  {
    pqxx::work tx(conn);
    REQUIRE(finish_routing(tx, routing[0].lease, deliveries));
    tx.commit();
  }
  auto claims = claim_for_delivery(conn, {.owner = "deliverer", .lease_time = 60s, .limit = 1, .max_expired_claims = 5},
                                   {"maildir", "relay"});
  REQUIRE(claims.size() == 1);
  return claims[0];
}

FinishOutcome finish(pqxx::connection& conn, const DeliveryClaim& claim, const std::vector<DeliveryResult>& results,
                     const FinishOptions& options = {.max_queue_lifetime = 5 * 24h,
                                                     .delay_warning_after = 0s,
                                                     .reporting_mta = "mx.example.test"}) {
  pqxx::work tx(conn);
  auto outcome = finish_delivery(tx, claim.lease, results, options);
  tx.commit();
  return outcome;
}

std::string body_of(test::TestDatabase& db, std::int64_t id) {
  auto rows = db.query(
      "SELECT convert_from(string_agg(data, ''::bytea ORDER BY seq), 'SQL_ASCII') FROM body_chunks "
      "WHERE message_id = " +
      std::to_string(id));
  return rows[0][0].as<std::string>();
}

int count(test::TestDatabase& db, const std::string& sql) { return db.query(sql)[0][0].as<int>(); }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("a 5xx and a router refusal give one DSN from <> to the sender, and the message is DONE") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claim =
      routed_and_claimed(*conn, "s@x.org",
                         {plan("a@y.org", "a@y.org", "relay", "pool1"), plan("b@y.org", "b@y.org", "relay", "pool1"),
                          plan("c@x.test", "list@x.test", "bounce", "", "5.1.1 user unknown")});
  REQUIRE(claim.tasks.size() == 2);
  CHECK(finish(*conn, claim,
               {{claim.tasks[0].delivery_id, DeliveryStatus::delivered, "250 2.0.0 ok", 0s},
                {claim.tasks[1].delivery_id, DeliveryStatus::bounced, "550 5.1.1 <b@y.org>: no such user", 0s}}) ==
        FinishOutcome::done);
  auto id = claim.lease.msg_id;
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + std::to_string(id)) == 5);
  auto dsns = db.query("SELECT id, state, envelope_from FROM messages WHERE id <> " + std::to_string(id));
  REQUIRE(dsns.size() == 1);
  auto dsn_id = dsns[0][0].as<std::int64_t>();
  CHECK(dsns[0][1].as<int>() == 1);
  CHECK(dsns[0][2].as<std::string>().empty());
  CHECK(
      db.query("SELECT address FROM recipients WHERE message_id = " + std::to_string(dsn_id))[0][0].as<std::string>() ==
      "s@x.org");
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE dsn_message_id = " + std::to_string(dsn_id)) == 2);

  auto body = body_of(db, dsn_id);
  CHECK(contains(body, "Content-Type: multipart/report; report-type=delivery-status;"));
  CHECK(contains(body, "Content-Type: message/delivery-status\r\n"));
  CHECK(contains(body, "Reporting-MTA: dns; mx.example.test\r\n"));
  CHECK(contains(body,
                 "Final-Recipient: rfc822; b@y.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                 "Diagnostic-Code: smtp; 550 5.1.1 <b@y.org>: no such user\r\n"));
  CHECK(contains(body,
                 "Original-Recipient: rfc822; list@x.test\r\nFinal-Recipient: rfc822; c@x.test\r\n"
                 "Action: failed\r\nStatus: 5.1.1\r\n"));
  CHECK_FALSE(contains(body, "Final-Recipient: rfc822; a@y.org"));
  CHECK(contains(body, "Content-Type: text/rfc822-headers\r\n"));
  CHECK(contains(body, "Subject: quarterly report\r\nMessage-ID: <orig-1@x.org>\r\n"));
  CHECK_FALSE(contains(body, "body line"));
  CHECK(contains(body, "Auto-Submitted: auto-replied\r\n"));
}

TEST_CASE("a list member refused at delivery is reported to the list's bounce address, not to the poster") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto member = plan("m@y.org", "team@x.test", "relay", "pool1");
  member.envelope_from_override = "team-bounces@x.test";
  auto quiet = plan("q@y.org", "quiet@x.test", "relay", "pool1");
  quiet.envelope_from_override = "";  // a list whose reports go nowhere
  auto claim = routed_and_claimed(*conn, "poster@x.org", {plan("d@y.org", "d@y.org", "relay", "pool1"), member, quiet});
  REQUIRE(claim.tasks.size() == 3);
  CHECK(finish(*conn, claim,
               {{claim.tasks[0].delivery_id, DeliveryStatus::bounced, "550 5.1.1 <d@y.org>: no such user", 0s},
                {claim.tasks[1].delivery_id, DeliveryStatus::bounced, "550 5.1.1 <m@y.org>: no such user", 0s},
                {claim.tasks[2].delivery_id, DeliveryStatus::bounced, "550 5.1.1 <q@y.org>: no such user", 0s}}) ==
        FinishOutcome::done);
  auto id = std::to_string(claim.lease.msg_id);
  auto reports = db.query(
      "SELECT r.address, m.id FROM messages m JOIN recipients r ON r.message_id = m.id "
      "WHERE m.id <> " + id + " ORDER BY r.address");
  REQUIRE(reports.size() == 2);
  CHECK(reports[0][0].as<std::string>() == "poster@x.org");
  CHECK(reports[1][0].as<std::string>() == "team-bounces@x.test");
  auto to_poster = body_of(db, reports[0][1].as<std::int64_t>());
  auto to_list = body_of(db, reports[1][1].as<std::int64_t>());
  CHECK(contains(to_poster, "Final-Recipient: rfc822; d@y.org"));
  CHECK_FALSE(contains(to_poster, "m@y.org"));
  CHECK(contains(to_list, "Final-Recipient: rfc822; m@y.org"));
  CHECK_FALSE(contains(to_list, "d@y.org"));
  CHECK_FALSE(contains(to_poster + to_list, "q@y.org"));
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id + " AND dsn_message_id IS NULL") == 1);
}

TEST_CASE("a batch of fully delivered messages finishes in one statement; the rest is left to finish_delivery") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto whole = routed_and_claimed(*conn, "s@x.org", {plan("a@y.org", "a@y.org", "maildir", "/m/a"),
                                                     plan("b@y.org", "b@y.org", "maildir", "/m/b")});
  // Another delivery still pending (a transport this deliverer did not claim).
  auto partial = routed_and_claimed(*conn, "s@x.org", {plan("c@y.org", "c@y.org", "maildir", "/m/c"),
                                                       plan("d@y.org", "d@y.org", "lmtp", "lmtp1")});
  auto stolen = routed_and_claimed(*conn, "s@x.org", {plan("e@y.org", "e@y.org", "maildir", "/m/e")});
  db.query("UPDATE messages SET lease_token = gen_random_uuid() WHERE id = " + std::to_string(stolen.lease.msg_id));
  auto delivered = [](const DeliveryClaim& c) {
    std::vector<DeliveryResult> out;
    for (const auto& t : c.tasks) out.push_back({t.delivery_id, DeliveryStatus::delivered, "ok " + t.recipient, 0s});
    return DeliveredMessage{c.lease, out};
  };
  std::vector<std::int64_t> finished;
  {
    pqxx::work tx(*conn);
    finished = finish_delivered_batch(tx, {delivered(whole), delivered(partial), delivered(stolen)});
    tx.commit();
  }
  CHECK(finished == std::vector<std::int64_t>{whole.lease.msg_id});
  auto id = [](const DeliveryClaim& c) { return std::to_string(c.lease.msg_id); };
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + id(whole)) == 5);
  CHECK(count(db, "SELECT count(*) FROM messages WHERE lease_token IS NULL AND done_at IS NOT NULL AND id = " + id(whole)) ==
        1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id(whole) +
                      " AND status = 'delivered' AND attempts = 1 AND final_at IS NOT NULL"
                      " AND last_error = 'ok ' || recipient") == 2);
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + id(partial)) == 4);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id(partial) + " AND status = 'pending'") == 2);
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + id(stolen)) == 4);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id(stolen) + " AND status = 'pending'") == 1);
  CHECK(count(db, "SELECT count(*) FROM messages WHERE envelope_from = ''") == 0);  // no DSN
}

TEST_CASE("no DSN is ever sent to the null sender") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claim = routed_and_claimed(*conn, "", {plan("a@y.org", "a@y.org", "relay", "pool1")});
  CHECK(finish(*conn, claim, {{claim.tasks[0].delivery_id, DeliveryStatus::bounced, "550 5.7.1 refused", 0s}}) ==
        FinishOutcome::done);
  CHECK(count(db, "SELECT count(*) FROM messages") == 1);
  CHECK(count(db, "SELECT state FROM messages") == 5);
}

TEST_CASE("a message whose deliveries all succeed gets no DSN") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claim = routed_and_claimed(*conn, "s@x.org", {plan("a@y.org", "a@y.org", "maildir", "/m/a")});
  CHECK(finish(*conn, claim, {{claim.tasks[0].delivery_id, DeliveryStatus::delivered, "ok", 0s}}) ==
        FinishOutcome::done);
  CHECK(count(db, "SELECT count(*) FROM messages") == 1);
}

TEST_CASE("a 4xx defers: 4->3, attempts counted, next attempt after the backoff; later success finishes") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claim = routed_and_claimed(*conn, "s@x.org",
                                  {plan("a@y.org", "a@y.org", "relay", "p"), plan("b@y.org", "b@y.org", "relay", "p")});
  CHECK(finish(*conn, claim,
               {{claim.tasks[0].delivery_id, DeliveryStatus::delivered, "250 ok", 0s},
                {claim.tasks[1].delivery_id, DeliveryStatus::deferred, "451 4.3.0 try later", 120s}}) ==
        FinishOutcome::deferred);
  auto id = std::to_string(claim.lease.msg_id);
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + id) == 3);
  CHECK(count(db,
              "SELECT count(*) FROM messages WHERE lease_token IS NULL AND next_attempt_at "
              "BETWEEN now() + interval '110 seconds' AND now() + interval '130 seconds'") == 1);
  CHECK(count(db, "SELECT attempts FROM deliveries WHERE recipient = 'b@y.org'") == 1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE status = 'pending' AND last_error = '451 4.3.0 try later'") ==
        1);
  // Not due yet: nobody claims it.
  CHECK(claim_for_delivery(*conn, {.owner = "d2", .lease_time = 60s, .limit = 10, .max_expired_claims = 5}, {"relay"})
            .empty());
  db.query("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'");
  db.query("UPDATE messages SET next_attempt_at = now() - interval '1 second'");
  auto again =
      claim_for_delivery(*conn, {.owner = "d2", .lease_time = 60s, .limit = 10, .max_expired_claims = 5}, {"relay"});
  REQUIRE(again.size() == 1);
  REQUIRE(again[0].tasks.size() == 1);  // only the pending one is retried
  CHECK(again[0].tasks[0].recipient == "b@y.org");
  CHECK(again[0].tasks[0].attempts == 1);
  CHECK(finish(*conn, again[0], {{again[0].tasks[0].delivery_id, DeliveryStatus::delivered, "250 ok", 0s}}) ==
        FinishOutcome::done);
  CHECK(count(db, "SELECT count(*) FROM messages") == 1);  // no DSN
}

TEST_CASE("a deferral past the queue lifetime bounces with 4.4.7 and one DSN") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claim = routed_and_claimed(*conn, "s@x.org", {plan("a@y.org", "a@y.org", "relay", "p")});
  db.query("UPDATE messages SET received_at = now() - interval '6 days'");
  CHECK(finish(*conn, claim, {{claim.tasks[0].delivery_id, DeliveryStatus::deferred, "421 4.4.2 timeout", 60s}}) ==
        FinishOutcome::done);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE status = 'bounced' AND last_error LIKE '4.4.7 %421 4.4.2%'") ==
        1);
  auto dsn = db.query("SELECT id FROM messages WHERE envelope_from = ''");
  REQUIRE(dsn.size() == 1);
  auto body = body_of(db, dsn[0][0].as<std::int64_t>());
  CHECK(contains(body, "Action: failed\r\nStatus: 4.4.7\r\n"));
}

TEST_CASE("one delay warning, once, when enabled, and the final DSN still follows") {
  test::TestDatabase db;
  auto conn = db.connect();
  FinishOptions options{
      .max_queue_lifetime = 5 * 24h, .delay_warning_after = 3600s, .reporting_mta = "mx.example.test"};
  auto claim = routed_and_claimed(*conn, "s@x.org", {plan("a@y.org", "a@y.org", "relay", "p")});
  // Young message: no warning yet.
  CHECK(finish(*conn, claim, {{claim.tasks[0].delivery_id, DeliveryStatus::deferred, "451 later", 0s}}, options) ==
        FinishOutcome::deferred);
  CHECK(count(db, "SELECT count(*) FROM messages") == 1);
  db.query("UPDATE messages SET received_at = now() - interval '2 hours', next_attempt_at = now()");
  for (int round = 0; round < 2; ++round) {
    auto again =
        claim_for_delivery(*conn, {.owner = "d", .lease_time = 60s, .limit = 10, .max_expired_claims = 5}, {"relay"});
    REQUIRE(again.size() == 1);
    CHECK(finish(*conn, again[0], {{again[0].tasks[0].delivery_id, DeliveryStatus::deferred, "451 later", 0s}},
                 options) == FinishOutcome::deferred);
  }
  auto warnings = db.query("SELECT id FROM messages WHERE envelope_from = ''");
  REQUIRE(warnings.size() == 1);
  auto body = body_of(db, warnings[0][0].as<std::int64_t>());
  CHECK(contains(body, "Action: delayed\r\nStatus: 4.0.0\r\n"));
  CHECK(contains(body, "Subject: Delayed Mail"));
  auto last =
      claim_for_delivery(*conn, {.owner = "d", .lease_time = 60s, .limit = 10, .max_expired_claims = 5}, {"relay"});
  REQUIRE(last.size() == 1);
  CHECK(finish(*conn, last[0], {{last[0].tasks[0].delivery_id, DeliveryStatus::bounced, "550 5.1.1 gone", 0s}},
               options) == FinishOutcome::done);
  CHECK(count(db, "SELECT count(*) FROM messages WHERE envelope_from = ''") == 2);
}

TEST_CASE("a finish with a lost lease records nothing and queues no DSN") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claim = routed_and_claimed(*conn, "s@x.org", {plan("a@y.org", "a@y.org", "relay", "p")});
  auto stale = claim;
  stale.lease.token = "00000000-0000-0000-0000-000000000000";
  CHECK(finish(*conn, stale,
               {{claim.tasks[0].delivery_id, DeliveryStatus::bounced, "550 no", 0s}}) == FinishOutcome::lost_lease);
  CHECK(count(db, "SELECT count(*) FROM messages") == 1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE status = 'pending'") == 1);
}

TEST_CASE("only a message's first delivery claim says so; after a deferral, an expired lease or a reset it does not") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto claim = routed_and_claimed(*conn, "s@x.org", {plan("a@y.org", "a@y.org", "maildir", "/m/a")});
  CHECK(claim.first_claim);
  auto id = std::to_string(claim.lease.msg_id);
  auto claim_again = [&] {
    db.query("UPDATE deliveries SET next_attempt_at = now() WHERE message_id = " + id);
    db.query("UPDATE messages SET next_attempt_at = now() WHERE id = " + id);
    auto claims = claim_for_delivery(
        *conn, {.owner = "deliverer", .lease_time = 60s, .limit = 1, .max_expired_claims = 5}, {"maildir"});
    REQUIRE(claims.size() == 1);
    return claims[0];
  };
  // Deferred: a copy may have been written for another recipient, or left
  // behind by this one; the next claim must look.
  CHECK(finish(*conn, claim, {{claim.tasks[0].delivery_id, DeliveryStatus::deferred, "quota", 0s}}) ==
        FinishOutcome::deferred);
  auto second = claim_again();
  CHECK_FALSE(second.first_claim);
  // The worker died holding it: the lease expires and the message is taken again.
  db.query("UPDATE messages SET lease_expires = now() - interval '1 second' WHERE id = " + id);
  auto reclaimed = claim_for_delivery(
      *conn, {.owner = "deliverer", .lease_time = 60s, .limit = 1, .max_expired_claims = 5}, {"maildir"});
  REQUIRE(reclaimed.size() == 1);
  CHECK_FALSE(reclaimed[0].first_claim);
  // The reaper returns an expired lease to ROUTED; the fresh claim after it
  // still knows the message was claimed before.
  db.query("UPDATE messages SET lease_expires = now() - interval '1 second' WHERE id = " + id);
  CHECK(reset_expired_leases(*conn, common::MsgState::delivering, 5, 10).reset == 1);
  CHECK_FALSE(claim_again().first_claim);
}
