// The router against a real PostgreSQL: the rule book end to end (plus-
// addressing, catch-all, forwarding, lists with a 10,000-member bulk fan-out,
// duplicates), the RCPT-time check, and poison messages.
#include <chrono>

#include "ctl/db/routing_admin.h"
#include "router/db/queue.h"
#include "pg/transitions_hold.h"
#include "router_support.h"

using namespace wsmtp;
using namespace wsmtp::test;
using namespace std::chrono_literals;

namespace {

std::string id_s(std::int64_t id) { return std::to_string(id); }

}  // namespace

TEST_CASE(
    "plus-addressing, catch-all, forwarding and mbox route in one "
    "transaction with the 2->3 move") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "bo", "pm"});
  {
    pqxx::work tx(*conn);
    common::pg::set_catchall(tx, "example.org", "pm@example.org");
    common::pg::add_forward(tx, "bo@example.org", "bo@elsewhere.example");
    common::pg::set_forward_keep_copy(tx, "bo@example.org", true);
    tx.exec0(
        "INSERT INTO mailboxes (address, domain, maildir, transport) "
        "VALUES ('unix@example.org', 'example.org', '/var/mail/unix', 'mbox')");
    tx.commit();
  }
  auto id = receive(*conn, "s@remote.example",
                    {"ann+news@example.org", "nobody@example.org", "bo@example.org", "unix@example.org"});
  CHECK(route_all(*conn) == 1);
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + id_s(id)) == 3);
  auto rows = db.query(
      "SELECT recipient, original_rcpt, transport, "
      "destination FROM deliveries WHERE message_id = " +
      id_s(id) + " ORDER BY recipient, transport");
  std::vector<std::string> got;
  for (const auto& r : rows)
    got.push_back(r[0].as<std::string>() + " " + r[1].as<std::string>() + " " + r[2].as<std::string>() + " " +
                  r[3].as<std::string>());
  CHECK(got == std::vector<std::string>{"ann@example.org ann+news@example.org maildir /m/ann",
                                        "bo@elsewhere.example bo@example.org relay default",
                                        "bo@example.org bo@example.org maildir /m/bo",
                                        "pm@example.org nobody@example.org maildir /m/pm",
                                        "unix@example.org unix@example.org mbox /var/mail/unix"});
}

TEST_CASE(
    "a 10,000-member list fans out in one transaction with list headers, "
    "once per member") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "owner"});
  db.query(
      "INSERT INTO mailboxes (address, domain, maildir) "
      "SELECT 'm' || i || '@example.org', 'example.org', '/m/m' || i FROM "
      "generate_series(1, 5000) i");
  {
    pqxx::work tx(*conn);
    common::pg::ListSpec spec{"big@example.org",
                              "owner@example.org",
                              "big-bounces@example.org",
                              common::PostingPolicy::anyone,
                              "",
                              "Big list",
                              ""};
    REQUIRE(common::pg::add_list(tx, spec));
    CHECK_FALSE(common::pg::add_list(tx, spec));
    common::pg::add_alias(tx, "staff@example.org", "example.org", "ann@example.org");
    REQUIRE(common::pg::add_list_member(tx, "big@example.org", "staff@example.org"));  // expanded by the router
    tx.commit();
  }
  db.query(
      "INSERT INTO list_members (list_address, member) "
      "SELECT 'big@example.org', 'm' || i || '@example.org' FROM "
      "generate_series(1, 5000) i "
      "UNION ALL SELECT 'big@example.org', 'r' || i || '@remote' || (i % "
      "7) || '.example' "
      "FROM generate_series(1, 4998) i UNION ALL SELECT "
      "'big@example.org', 'ann@example.org'");
  // ann is reached directly, via the alias member and as a member: one copy.
  auto id = receive(*conn, "s@remote.example", {"big@example.org", "ann@example.org"});
  auto started = std::chrono::steady_clock::now();
  CHECK(route_all(*conn) == 1);
  auto took = std::chrono::steady_clock::now() - started;
  WARN("routing a 10,000-member list took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                            << " ms");
  const std::string m = id_s(id);
  // 10,000 members; ann (direct, member, and via the alias member) gets one
  // copy.
  CHECK(count(db, "SELECT count(*) FROM list_members") == 10000);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m) == 9999);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m + " AND recipient = 'ann@example.org'") ==
        1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m +
                      " AND transport = 'relay' AND envelope_from_override = "
                      "'big-bounces@example.org'") == 4998);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m +
                      " AND prepend_headers LIKE 'List-Id: Big list "
                      "<big.example.org>\r\n%X-Loop: big@example.org\r\n'") == 9998);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m +
                      " AND recipient = 'ann@example.org' AND "
                      "envelope_from_override IS NULL") == 1);
  // Its speed is reported above and measured in tests/bench/router_throughput.py,
  // not asserted here: a loaded machine would make such a check flaky.
}

TEST_CASE(
    "list mail coming back to its list is stopped by X-Loop; "
    "members-only lists refuse outsiders") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "owner"});
  {
    pqxx::work tx(*conn);
    common::pg::add_list(tx, {"team@example.org", "owner@example.org", "", common::PostingPolicy::members, "", "", ""});
    common::pg::add_list_member(tx, "team@example.org", "ann@example.org");
    tx.commit();
  }
  auto looped = receive(*conn, "ann@example.org", {"team@example.org"},
                        "X-Loop: team@example.org\r\nSubject: again\r\n\r\nbody\r\n");
  auto outsider = receive(*conn, "x@remote.example", {"team@example.org"});
  auto member = receive(*conn, "ann@example.org", {"team@example.org"});
  route_all(*conn);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(looped) +
                      " AND status = 'bounced' AND last_error LIKE '5.4.6%X-Loop%'") == 1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(outsider) +
                      " AND status = 'bounced' AND last_error LIKE '5.7.2%'") == 1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(member) +
                      " AND recipient = 'ann@example.org' AND "
                      "envelope_from_override = 'owner@example.org'") == 1);
}

TEST_CASE("RCPT-time check knows lists, catch-alls and plus-addresses") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann"});
  add_directory(*conn, "other.example", {"bo"});
  {
    pqxx::work tx(*conn);
    common::pg::add_list(tx, {"team@example.org", "ann@example.org", "", common::PostingPolicy::anyone, "", "", ""});
    common::pg::add_alias(tx, "sales@example.org", "example.org", "ann@example.org");
    tx.commit();
  }
  pqxx::work tx(*conn);
  using common::RecipientVerdict;
  auto check = [&](const std::string& a, const std::string& d) { return common::pg::check_recipient(tx, a, d); };
  CHECK(check("ann@example.org", "example.org") == RecipientVerdict::known_local);
  CHECK(check("ann+tag@example.org", "example.org") == RecipientVerdict::known_local);
  CHECK(check("sales+x+y@example.org", "example.org") == RecipientVerdict::known_local);
  CHECK(check("team@example.org", "example.org") == RecipientVerdict::known_local);
  CHECK(check("team+x@example.org", "example.org") == RecipientVerdict::known_local);
  CHECK(check("+ann@example.org", "example.org") == RecipientVerdict::unknown_local);
  CHECK(check("nobody@example.org", "example.org") == RecipientVerdict::unknown_local);
  CHECK(check("x@remote.example", "remote.example") == RecipientVerdict::remote);
  CHECK(common::pg::set_recipient_delimiter(tx, "example.org", "-"));
  CHECK(check("ann+tag@example.org", "example.org") == RecipientVerdict::unknown_local);
  CHECK(check("ann-tag@example.org", "example.org") == RecipientVerdict::known_local);
  CHECK(common::pg::set_catchall(tx, "other.example", "bo@other.example"));
  CHECK(check("anything@other.example", "other.example") == RecipientVerdict::known_local);
}

TEST_CASE(
    "a message that makes routing fail is retried with backoff, then "
    "held with its error") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "poison"});
  // A broken install as seen by the router: inserting this delivery always
  // fails.
  db.query(
      "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "IF NEW.recipient = 'poison@example.org' THEN RAISE EXCEPTION 'poisoned "
      "row'; END IF; RETURN NEW; END $$; "
      "CREATE TRIGGER poison BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE "
      "FUNCTION poison()");
  auto bad = receive(*conn, "s@remote.example", {"poison@example.org"});
  auto good = receive(*conn, "s2@remote.example", {"ann@example.org"});
  router::RouterConfig config;
  config.max_routing_failures = 3;
  common::QueueConfig queue;
  queue.lease_time = 60s;
  route_all(*conn, config, queue);
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + id_s(good)) == 3);  // the queue keeps moving
  const std::string where = " FROM messages WHERE id = " + id_s(bad);
  CHECK(count(db, "SELECT routing_failures" + where) == 1);
  CHECK(db.query("SELECT last_error" + where)[0][0].as<std::string>().find("poisoned row") != std::string::npos);
  // The lease was shortened to 1 s (backoff), not left at 60 s.
  CHECK(count(db, "SELECT (lease_expires < now() + interval '2 seconds')::int" + where) == 1);
  for (int attempt = 2; attempt <= 3; ++attempt) {
    db.query(
        "UPDATE messages SET lease_expires = now() - interval '1 second' "
        "WHERE id = " +
        id_s(bad));
    route_all(*conn, config, queue);
    CHECK(count(db, "SELECT routing_failures" + where) == attempt);
  }
  CHECK(db.query("SELECT held" + where)[0][0].as<bool>());
  CHECK(db.query("SELECT held_reason" + where)[0][0].as<std::string>().find("routing failed 3 times") !=
        std::string::npos);
  db.query(
      "UPDATE messages SET lease_expires = now() - interval '1 second' "
      "WHERE id = " +
      id_s(bad));
  CHECK(route_all(*conn, config, queue) == 0);  // held: not claimed again
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(bad)) == 0);
}

TEST_CASE("router bookkeeping: backlog and pruning of fairness clocks") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann"});
  for (int i = 0; i < 3; ++i) receive(*conn, "s@remote.example", {"ann@example.org"});
  {
    pqxx::work tx(*conn);
    CHECK(common::pg::routing_backlog(tx) == 3);
    CHECK(common::pg::routing_backlog(tx, 2) == 2);
  }
  CHECK(count(db, "SELECT count(*) FROM route_fairness") == 2);  // sender and client
  db.query("UPDATE route_fairness SET next_vtime = 0");
  route_all(*conn);
  pqxx::work tx(*conn);
  CHECK(common::pg::routing_backlog(tx) == 0);
  CHECK(common::pg::prune_route_fairness(tx, 100) == 0);  // route_batch pruned them when it went idle
  CHECK(count(db, "SELECT count(*) FROM route_fairness") == 0);
}

// Issue 13: postmaster with nowhere to go is held in state 1 (with its
// reason), in the same batch transaction that routes the other messages; once
// [router] postmaster is set, a release routes it there.
TEST_CASE("postmaster without a mailbox or [router] postmaster is held, then routed after release") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "admin"});
  auto before = receive(*conn, "s@remote.example", {"ann@example.org"});
  auto pm = receive(*conn, "", {"postmaster@example.org", "postmaster"});
  auto after = receive(*conn, "s@remote.example", {"ann@example.org"});
  CHECK(route_all(*conn) == 3);
  CHECK(count(db, "SELECT count(*) FROM messages WHERE state = 3 AND id IN (" + id_s(before) + ", " + id_s(after) +
                      ")") == 2);
  auto row = db.query("SELECT state, held, held_reason, lease_owner IS NULL FROM messages WHERE id = " + id_s(pm));
  CHECK(row[0][0].as<int>() == 1);
  CHECK(row[0][1].as<bool>());
  CHECK(row[0][2].as<std::string>().find("no [router] postmaster set") != std::string::npos);
  CHECK(row[0][3].as<bool>());
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(pm)) == 0);

  router::RouterConfig config;
  config.postmaster = "admin@example.org";
  {
    pqxx::work tx(*conn);
    REQUIRE(common::pg::release_message(tx, pm));
    tx.commit();
  }
  CHECK(route_all(*conn, config) == 1);
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + id_s(pm)) == 3);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE recipient = 'admin@example.org' AND message_id = " +
                      id_s(pm)) == 1);
}
