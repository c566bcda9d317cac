// The router in a queue group against real PostgreSQL databases: a directory
// database and two queue shards. A message is routed in its own shard with the
// directory read from the directory's database (aliases, lists with bulk and
// expanded members, reports of refused members), exactly as in the one-server
// layout; an auto-reply goes once per period across shards; a directory that
// cannot be reached fails the batch like an outage and is reconnected.
#include <chrono>
#include <thread>

#include "ctl/db/routing_admin.h"
#include "pg/shards.h"
#include "queue_id.h"
#include "router_support.h"

using namespace wsmtp;
using namespace wsmtp::test;
using namespace std::chrono_literals;

namespace {

std::string id_s(std::int64_t id) { return std::to_string(id); }

// A directory and two shards (q1 id 1, q2 id 2), each its own database.
struct Group {
  Group() {
    config.conninfo = directory.conninfo();
    config.shards = {{.name = "q1", .id = 1, .weight = 1, .conninfo = q1.conninfo()},
                     {.name = "q2", .id = 2, .weight = 1, .conninfo = q2.conninfo()}};
    common::pg::claim_shard_identity(*q1_conn, config.shards[0]);
    common::pg::claim_shard_identity(*q2_conn, config.shards[1]);
  }

  TestDatabase directory, q1, q2;
  std::unique_ptr<pqxx::connection> directory_conn = directory.connect(), q1_conn = q1.connect(),
                                    q2_conn = q2.connect();
  common::DatabaseConfig config;
};

int route_shard(pqxx::connection& conn, common::pg::DirectoryLink& link, const common::QueueConfig& queue = {}) {
  int total = 0;
  common::pg::LeaseKeeper keeper(
      {.conninfo = conn.options(), .lease_time = queue.lease_time, .stall_limit = queue.lease_time});
  for (int n; (n = router::route_batch(conn, link, {}, queue, "router-test", keeper)) > 0;) total += n;
  return total;
}

// Mailboxes, an alias, and a list with members of every kind: a plain mailbox
// and a remote address (bulk fan-out), an alias (expanded by the router) and an
// unknown local address (refused and reported to the list's bounce address).
void set_up_directory(pqxx::connection& conn) {
  add_directory(conn, "example.org", {"ann", "bo", "carl", "owner", "bounces"});
  pqxx::work tx(conn);
  common::pg::add_alias(tx, "al@example.org", "example.org", "carl@example.org");
  REQUIRE(common::pg::add_list(tx, {"staff@example.org", "owner@example.org", "bounces@example.org",
                                    common::PostingPolicy::anyone, "", "", ""}));
  for (const char* m : {"bo@example.org", "r1@remote.example", "al@example.org", "gone@example.org"})
    REQUIRE(common::pg::add_list_member(tx, "staff@example.org", m));
  tx.commit();
}

const std::vector<std::string> kRecipients = {"ann@example.org", "staff@example.org", "nobody@example.org",
                                              "x@far.example"};

// The message's delivery rows, sorted, and its list report's recipient.
std::vector<std::string> plan_of(TestDatabase& db, std::int64_t msg_id) {
  std::vector<std::string> out;
  for (const auto& row :
       db.query("SELECT recipient || ' ' || transport || ' ' || destination || ' ' || status || ' ' || "
                "COALESCE(envelope_from_override, '-') || ' ' || (prepend_headers LIKE 'List-Id:%')::text || ' ' || "
                "(dsn_message_id IS NOT NULL)::text FROM deliveries WHERE message_id = " +
                id_s(msg_id) + " ORDER BY 1"))
    out.push_back(row[0].as<std::string>());
  return out;
}

int queue_rows(TestDatabase& db) {
  return count(db,
               "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM deliveries) + "
               "(SELECT count(*) FROM recipients) + (SELECT count(*) FROM body_chunks)");
}

void set_vacation(pqxx::connection& conn) {
  pqxx::work tx(conn);
  common::pg::set_autoreply(tx, {"ann@example.org", "Away", "Back on Monday.\n", "", "", 7 * 24 * 3600});
  tx.commit();
}

std::string to_ann() { return "To: ann@example.org\r\nSubject: hi\r\nMessage-ID: <m@remote.example>\r\n\r\nhi\r\n"; }

int replies_to(TestDatabase& db, const std::string& sender) {
  return count(db,
               "SELECT count(*) FROM messages m JOIN recipients r ON r.message_id = m.id "
               "WHERE m.envelope_from = '' AND m.received_by = 'wroute' AND r.address = '" +
                   sender + "'");
}

}  // namespace

TEST_CASE("a message is routed in its shard with the directory in another database, as in one database") {
  Group group;
  set_up_directory(*group.directory_conn);
  common::pg::DirectoryLink link(group.config, group.config.shards[0]);
  REQUIRE_FALSE(link.shared());
  auto id = receive(*group.q1_conn, "poster@remote.example", kRecipients);
  CHECK(common::shard_of(id) == 1);
  CHECK(route_shard(*group.q1_conn, link) == 2);  // the message, then the report to the list's bounce address

  auto& q1 = group.q1;
  const std::string m = id_s(id);
  CHECK(count(q1, "SELECT state FROM messages WHERE id = " + m) == 3);
  auto rows = [&](const std::string& where) {
    return count(q1, "SELECT count(*) FROM deliveries WHERE message_id = " + m + " AND " + where);
  };
  CHECK(rows("true") == 7);
  CHECK(rows("recipient = 'ann@example.org' AND destination = '/m/ann' AND status = 'pending' "
             "AND envelope_from_override IS NULL") == 1);
  CHECK(rows("recipient = 'x@far.example' AND transport = 'relay' AND destination = 'default'") == 1);
  CHECK(rows("recipient = 'nobody@example.org' AND status = 'bounced' AND envelope_from_override IS NULL") == 1);
  // The list: its bulk members (a mailbox, a remote address) from the arrays
  // read in the directory, its alias member expanded, its unknown member
  // refused and reported to the bounce address.
  const std::string list_copy =
      " AND envelope_from_override = 'bounces@example.org' AND prepend_headers LIKE 'List-Id:%'";
  CHECK(rows("recipient = 'bo@example.org' AND transport = 'maildir' AND destination = '/m/bo'" + list_copy) == 1);
  CHECK(rows("recipient = 'r1@remote.example' AND transport = 'relay' AND destination = 'default'" + list_copy) == 1);
  CHECK(rows("recipient = 'carl@example.org' AND destination = '/m/carl'" + list_copy) == 1);
  CHECK(rows("recipient = 'gone@example.org' AND status = 'bounced' AND dsn_message_id IS NOT NULL") == 1);
  // The report is a message of the same shard, routed there.
  auto report =
      q1.query("SELECT dsn_message_id FROM deliveries WHERE recipient = 'gone@example.org'")[0][0].as<std::int64_t>();
  CHECK(common::shard_of(report) == 1);
  CHECK(count(q1, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(report) +
                      " AND recipient = 'bounces@example.org' AND destination = '/m/bounces'") == 1);
  // Nothing of the queue in the directory or the other shard.
  CHECK(queue_rows(group.directory) == 0);
  CHECK(queue_rows(group.q2) == 0);

  // The one-server layout writes the same rows.
  TestDatabase single;
  auto single_conn = single.connect();
  set_up_directory(*single_conn);
  auto single_id = receive(*single_conn, "poster@remote.example", kRecipients);
  CHECK(route_all(*single_conn) == 2);
  CHECK(plan_of(q1, id) == plan_of(single, single_id));
}

TEST_CASE("an auto-reply goes once per period across shards, created in the message's shard") {
  Group group;
  add_directory(*group.directory_conn, "example.org", {"ann"});
  set_vacation(*group.directory_conn);
  common::pg::DirectoryLink link1(group.config, group.config.shards[0]), link2(group.config, group.config.shards[1]);

  receive(*group.q1_conn, "s@remote.example", {"ann@example.org"}, to_ann());
  CHECK(route_shard(*group.q1_conn, link1) == 2);  // the message and its reply
  CHECK(replies_to(group.q1, "s@remote.example") == 1);
  CHECK(count(group.q1, "SELECT count(*) FROM messages WHERE envelope_from = '' AND id / 100000000000000 = 1") == 1);
  CHECK(count(group.directory,
              "SELECT count(*) FROM autoreply_sent WHERE address = 'ann@example.org' "
              "AND sender = 's@remote.example'") == 1);

  // The same sender writes again through the other shard: no second reply.
  receive(*group.q2_conn, "s@remote.example", {"ann@example.org"}, to_ann());
  // Another sender through it is answered, there.
  receive(*group.q2_conn, "t@remote.example", {"ann@example.org"}, to_ann());
  CHECK(route_shard(*group.q2_conn, link2) == 3);
  CHECK(replies_to(group.q2, "s@remote.example") == 0);
  CHECK(replies_to(group.q2, "t@remote.example") == 1);
  CHECK(count(group.q2, "SELECT count(*) FROM deliveries WHERE recipient = 'ann@example.org'") == 2);

  // The record is the directory's alone; no queue rows there.
  CHECK(count(group.directory, "SELECT count(*) FROM autoreply_sent") == 2);
  CHECK(count(group.q1, "SELECT count(*) FROM autoreply_sent") == 0);
  CHECK(count(group.q2, "SELECT count(*) FROM autoreply_sent") == 0);
  CHECK(queue_rows(group.directory) == 0);
}

TEST_CASE("a directory that cannot be reached fails the batch like an outage, and is reconnected") {
  Group group;
  add_directory(*group.directory_conn, "example.org", {"ann"});
  const std::string directory_name = group.directory_conn->dbname();
  common::QueueConfig queue;
  queue.lease_time = 1s;
  auto id = receive(*group.q1_conn, "s@remote.example", {"ann@example.org"});
  const std::string m = id_s(id);

  SECTION("unreachable from the start: nothing is claimed") {
    common::DatabaseConfig broken = group.config;
    broken.conninfo = group.directory.conninfo() + " port=1";
    common::pg::DirectoryLink link(broken, broken.shards[0]);
    CHECK_THROWS_AS(route_shard(*group.q1_conn, link, queue), pqxx::broken_connection);
    CHECK(count(group.q1, "SELECT count(*) FROM messages WHERE id = " + m +
                              " AND state = 1 AND lease_owner IS NULL AND routing_failures = 0") == 1);
  }

  SECTION("lost after the claim: the message comes back after its lease, uncounted") {
    common::pg::DirectoryLink link(group.config, group.config.shards[0]);
    CHECK(route_shard(*group.q1_conn, link, queue) == 1);  // the directory connection is made
    const std::string m2 = id_s(receive(*group.q1_conn, "s@remote.example", {"ann@example.org"}));
    // The directory's server drops the router's session and takes no new one.
    group.q1.query("ALTER DATABASE " + directory_name + " ALLOW_CONNECTIONS false");
    group.q1.query("SELECT pg_terminate_backend(" + std::to_string(link.connection(*group.q1_conn).backendpid()) + ")");
    CHECK_THROWS_AS(route_shard(*group.q1_conn, link, queue), pqxx::broken_connection);
    CHECK(count(group.q1, "SELECT count(*) FROM messages WHERE id = " + m2 +
                              " AND state = 2 AND routing_failures = 0 AND NOT held") == 1);
    group.q1.query("ALTER DATABASE " + directory_name + " ALLOW_CONNECTIONS true");
    std::this_thread::sleep_for(1500ms);  // the lease runs out
    CHECK(route_shard(*group.q1_conn, link, queue) == 1);
    CHECK(count(group.q1, "SELECT count(*) FROM messages WHERE id = " + m2 + " AND state = 3") == 1);
  }
}
