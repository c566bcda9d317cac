// Mailing lists against a real PostgreSQL: lists with nobody to deliver to
// bounce, members refused inside a fan-out are reported to the list's bounce
// address (not to the poster), and max_list_members bounds the fan-out.
#include "pg/dsn_messages.h"
#include "ctl/db/routing_admin.h"
#include "router_support.h"

using namespace wsmtp;
using namespace wsmtp::test;

namespace {

std::string id_s(std::int64_t id) { return std::to_string(id); }

void add_list(pqxx::connection& conn, const std::string& address, const std::vector<std::string>& members) {
  pqxx::work tx(conn);
  REQUIRE(common::pg::add_list(
      tx, {address, "owner@example.org", "bounces@example.org", common::PostingPolicy::anyone, "", "", ""}));
  for (const auto& m : members) REQUIRE(common::pg::add_list_member(tx, address, m));
  tx.commit();
}

}  // namespace

TEST_CASE("a list with no members bounces its recipient instead of expanding to nothing") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "owner"});
  add_list(*conn, "empty@example.org", {});
  auto id = receive(*conn, "s@remote.example", {"empty@example.org", "ann@example.org"});
  CHECK(route_all(*conn) == 1);
  const std::string m = id_s(id);
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + m) == 3);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m +
                      " AND recipient = 'empty@example.org' AND status = 'bounced' AND dsn_message_id IS NULL"
                      " AND envelope_from_override IS NULL AND last_error = '5.2.4 mailing list has no members'") == 1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m + " AND status = 'pending'") == 1);
}

TEST_CASE("members refused inside a list's fan-out are reported to the list's bounce address") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "owner", "bounces"});
  {
    pqxx::work tx(*conn);
    common::pg::add_alias(tx, "loop1@example.org", "example.org", "loop2@example.org");
    common::pg::add_alias(tx, "loop2@example.org", "example.org", "loop1@example.org");
    tx.commit();
  }
  add_list(*conn, "team@example.org", {"ann@example.org", "gone@example.org", "loop1@example.org"});
  auto id = receive(*conn, "poster@remote.example", {"team@example.org", "nobody@example.org"},
                    "Subject: to the team\r\nMessage-ID: <p1@remote.example>\r\n\r\nhello\r\n");
  CHECK(route_all(*conn) == 2);  // the message, then the report it queued
  const std::string m = id_s(id);
  // ann gets the list copy; gone and the looping alias are refused and reported
  // in one DSN to the bounce address; nobody (addressed directly) is left for
  // the poster's report.
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m + " AND status = 'pending'") == 1);
  auto dsn = db.query("SELECT DISTINCT dsn_message_id FROM deliveries WHERE message_id = " + m +
                      " AND recipient IN ('gone@example.org', 'loop1@example.org')");
  REQUIRE(dsn.size() == 1);
  REQUIRE_FALSE(dsn[0][0].is_null());
  const std::string report = dsn[0][0].as<std::string>();
  CHECK(count(db, "SELECT count(*) FROM messages WHERE id = " + report +
                      " AND envelope_from = '' AND received_by = 'wroute-dsn'") == 1);
  CHECK(count(db, "SELECT count(*) FROM recipients WHERE message_id = " + report +
                      " AND address = 'bounces@example.org'") == 1);
  auto body = db.query(
                    "SELECT convert_from(string_agg(data, '' ORDER BY seq), 'UTF8') FROM body_chunks "
                    "WHERE message_id = " +
                    report)[0][0]
                  .as<std::string>();
  CHECK(body.find("Final-Recipient: rfc822; gone@example.org") != std::string::npos);
  CHECK(body.find("5.4.6") != std::string::npos);
  CHECK(body.find("nobody@example.org") == std::string::npos);
  // The report itself was routed to the bounce address's mailbox.
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + report +
                      " AND recipient = 'bounces@example.org' AND status = 'pending'") == 1);
  // What the deliverer will report to the poster: only the direct refusal.
  pqxx::work tx(*conn);
  auto poster_dsn = common::pg::queue_failure_dsn(tx, id, "mx.example.org");
  REQUIRE(poster_dsn);
  auto poster_body = tx.exec(
                           "SELECT convert_from(string_agg(data, '' ORDER BY seq), 'UTF8') FROM body_chunks "
                           "WHERE message_id = " +
                           id_s(*poster_dsn))[0][0]
                         .as<std::string>();
  CHECK(poster_body.find("nobody@example.org") != std::string::npos);
  CHECK(poster_body.find("gone@example.org") == std::string::npos);
}

TEST_CASE("refused list members of mail from the null sender are not reported (no report loops)") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "owner"});
  add_list(*conn, "team@example.org", {"ann@example.org", "gone@example.org"});
  auto id = receive(*conn, "", {"team@example.org"});
  CHECK(route_all(*conn) == 1);
  CHECK(count(db, "SELECT count(*) FROM messages") == 1);  // no report queued
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(id) +
                      " AND recipient = 'gone@example.org' AND status = 'bounced'") == 1);
}

TEST_CASE("max_list_members bounds a message's list fan-out") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "owner"});
  add_list(*conn, "big@example.org", {});
  add_list(*conn, "small@example.org", {"ann@example.org"});
  db.query(
      "INSERT INTO list_members (list_address, member) "
      "SELECT 'big@example.org', 'r' || i || '@remote.example' FROM generate_series(1, 150) i");
  router::RouterConfig config;
  config.max_list_members = 100;
  auto id = receive(*conn, "s@remote.example", {"big@example.org", "small@example.org"});
  CHECK(route_all(*conn, config) == 1);
  const std::string m = id_s(id);
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + m) == 3);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m +
                      " AND recipient = 'big@example.org' AND status = 'bounced' "
                      " AND last_error LIKE '5.2.4 mailing list too large%'") == 1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m + " AND transport = 'relay'") == 0);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + m +
                      " AND recipient = 'ann@example.org' AND status = 'pending'") == 1);
  // The default limit takes the whole list.
  auto again = receive(*conn, "s@remote.example", {"big@example.org"});
  CHECK(route_all(*conn) == 1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(again) + " AND transport = 'relay'") ==
        150);
}

TEST_CASE("a batch of posts to big lists is routed in transactions of bounded fan-out") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"owner"});
  add_list(*conn, "big@example.org", {});
  db.query(
      "INSERT INTO list_members (list_address, member) "
      "SELECT 'big@example.org', 'r' || i || '@remote.example' FROM generate_series(1, 100) i");
  std::vector<std::int64_t> posts;
  for (int i = 0; i < 5; ++i) posts.push_back(receive(*conn, "s@remote.example", {"big@example.org"}));
  router::RouterConfig config;
  config.max_list_members = 150;  // each post fits; two posts fill a transaction
  common::QueueConfig queue;
  common::pg::LeaseKeeper keeper(
      {.conninfo = db.conninfo(), .lease_time = queue.lease_time, .stall_limit = queue.lease_time});
  auto link = one_server_link(*conn);
  CHECK(router::route_batch(*conn, link, config, queue, "router-test", keeper) == 5);
  for (auto id : posts) {
    CHECK(count(db, "SELECT state FROM messages WHERE id = " + id_s(id)) == 3);
    CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(id) + " AND status = 'pending'") ==
          100);
  }
  // Three transactions: their rows carry three different transaction times.
  CHECK(count(db, "SELECT count(DISTINCT routed_at) FROM messages") == 3);
}

TEST_CASE("the router's database role may report refused list members and nothing more") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "owner", "bounces"});
  add_list(*conn, "team@example.org", {"ann@example.org", "gone@example.org"});
  auto id = receive(*conn, "poster@remote.example", {"team@example.org"});
  // Login roles are per cluster: created once, reused by every test database.
  db.query(
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't_router_lists') THEN "
      "CREATE ROLE t_router_lists LOGIN IN ROLE wsmtp_router; END IF; END $$");
  pqxx::connection router(db.conninfo() + " user=t_router_lists");
  CHECK(route_all(router) == 2);  // the post, then the report
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(id) +
                      " AND recipient = 'gone@example.org' AND dsn_message_id IS NOT NULL") == 1);
  pqxx::work tx(router);
  CHECK_THROWS_AS(tx.exec("UPDATE deliveries SET status = 'pending'"), pqxx::insufficient_privilege);
}
