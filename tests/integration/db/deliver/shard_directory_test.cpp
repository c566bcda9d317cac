// The deliverer on a queue shard whose directory is another database (issue
// 17): relay pools, relays and mailbox quotas are read from the directory,
// the relay down marks and over-quota marks are written there; claims, the
// destination backoff and the DSNs stay on the shard (a DSN's id is in the
// shard's range). With the directory unreachable, the deliveries that need it
// are deferred and the message goes back to ROUTED: nothing is lost.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "deliver.h"
#include "directory_links.h"
#include "pg/body.h"
#include "pg/directory.h"
#include "pg/lease_keeper.h"
#include "pg/shards.h"
#include "pg/transitions.h"
#include "queue_id.h"
#include "test_database.h"
#include "transport_registry.h"
#include "unique_fd.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

const char* kBody = "From: s@x.org\r\nSubject: shards\r\n\r\nbody of the test message\r\n";

PlannedDelivery plan(const std::string& rcpt, const std::string& transport, const std::string& destination) {
  PlannedDelivery p;
  p.recipient = p.original_rcpt = rcpt;
  p.transport = transport;
  p.destination = destination;
  return p;
}

std::int64_t routed(pqxx::connection& conn, const std::vector<PlannedDelivery>& deliveries) {
  std::int64_t id = 0;
  {
    pqxx::work tx(conn);
    std::vector<std::string> rcpts;
    for (const auto& p : deliveries) rcpts.push_back(p.original_rcpt);
    id = create_message(tx, {"s@x.org", "192.0.2.7", "client.example", "test", rcpts});
    append_body_chunk(tx, id, 0, kBody);
    REQUIRE(commit_received(tx, id, static_cast<std::int64_t>(std::string(kBody).size())));
    tx.commit();
  }
  auto routing = claim_for_routing(conn, {.owner = "router", .lease_time = 60s, .limit = 1, .max_expired_claims = 5});
  REQUIRE(routing.size() == 1);
  pqxx::work tx(conn);
  REQUIRE(finish_routing(tx, routing[0].lease, deliveries));
  tx.commit();
  return id;
}

// A loopback port nobody listens on: bound, then closed.
int closed_port() {
  common::UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(fd.get() >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  return ntohs(addr.sin_port);
}

std::string text(test::TestDatabase& db, const std::string& sql) {
  auto rows = db.query(sql);
  REQUIRE(rows.size() == 1);
  return rows[0][0].is_null() ? "NULL" : rows[0][0].as<std::string>();
}

// status and last_error of the delivery to rcpt.
std::pair<std::string, std::string> delivery(test::TestDatabase& shard, const std::string& rcpt) {
  auto rows = shard.query("SELECT status, coalesce(last_error, '') FROM deliveries WHERE recipient = '" + rcpt + "'");
  REQUIRE(rows.size() == 1);
  return {rows[0][0].as<std::string>(), rows[0][1].as<std::string>()};
}

// The directory's rows: three mailboxes with quotas, a relay pool whose one
// relay refuses connections.
void fill_directory(test::TestDatabase& directory, const fs::path& root, int relay_port) {
  auto conn = directory.connect();
  pqxx::work tx(*conn);
  add_domain(tx, "x.test");
  for (const char* user : {"big", "full", "fits"})
    add_mailbox(tx, std::string(user) + "@x.test", "x.test", (root / user).string());
  // big: any message is larger than 10 bytes; full: 1,000 of its 1,050 bytes
  // are used by the file below; fits: room for everything.
  tx.exec("UPDATE mailboxes SET quota_bytes = 10 WHERE address = 'big@x.test'");
  tx.exec("UPDATE mailboxes SET quota_bytes = 1050 WHERE address = 'full@x.test'");
  tx.exec(
      "UPDATE mailboxes SET quota_bytes = 1000000, over_quota_seen = now() - interval '1 hour' "
      "WHERE address = 'fits@x.test'");
  tx.exec("INSERT INTO relay_pools (name, tls_policy) VALUES ('pool1', 'none')");
  tx.exec_params("INSERT INTO relays (pool, host, port) VALUES ('pool1', '127.0.0.1', $1)", relay_port);
  tx.commit();
  for (const char* user : {"big", "full", "fits"})
    for (const char* sub : {"tmp", "new", "cur"}) fs::create_directories(root / user / sub);
  std::ofstream(root / "full" / "cur" / "1000.old:2,S") << std::string(1000, 'x');
}

struct Rig {
  deliver::DeliverConfig config;
  common::QueueConfig queue;
  LeaseKeeper keeper;
  deliver::Deliverer deliverer;

  Rig(const std::string& shard_conninfo, DirectoryLink link)
      : config(make_config()),
        keeper({.conninfo = shard_conninfo, .lease_time = 60s, .stall_limit = 60s}),
        deliverer(config, queue, "worker-1", keeper, deliver::standard_transports(config, "mx.example.test", [] {}),
                  std::move(link)) {}

  static deliver::DeliverConfig make_config() {
    deliver::DeliverConfig c;
    c.transports = {"maildir", "relay"};
    c.hostname = "mx.example.test";
    return c;
  }
};

}  // namespace

TEST_CASE("a shard's deliveries read relay pools and quotas from the directory and mark them there") {
  test::TestDatabase directory;
  test::TestDatabase shard;
  auto conn = shard.connect();
  claim_shard_identity(*conn, {.name = "q2", .id = 2, .weight = 1, .conninfo = shard.conninfo()});
  const auto root = fs::temp_directory_path() / ("wsmtp-db-shard-dir-" + std::to_string(::getpid()));
  fs::remove_all(root);
  const int port = closed_port();
  fill_directory(directory, root, port);

  auto too_big = routed(*conn, {plan("big@x.test", "maildir", (root / "big").string())});
  auto quota = routed(*conn, {plan("full@x.test", "maildir", (root / "full").string()),
                              plan("fits@x.test", "maildir", (root / "fits").string())});
  auto relayed = routed(*conn, {plan("r@y.org", "relay", "pool1")});
  for (auto id : {too_big, quota, relayed}) CHECK(common::shard_of(id) == 2);

  Rig rig(shard.conninfo(), test::separate_directory_link(directory.conninfo(), shard.conninfo(), 2));
  REQUIRE(rig.deliverer.run_batch(*conn) == 3);

  // The quotas came from the directory (the shard has no mailboxes at all).
  CHECK(text(shard, "SELECT count(*) FROM mailboxes") == "0");
  CHECK(delivery(shard, "big@x.test").first == "bounced");
  CHECK_THAT(delivery(shard, "big@x.test").second, Catch::Contains("5.2.3"));
  CHECK(delivery(shard, "full@x.test").first == "pending");
  CHECK_THAT(delivery(shard, "full@x.test").second, Catch::Contains("4.2.2"));
  CHECK(delivery(shard, "fits@x.test").first == "delivered");
  // ...and the marks went there: full marked, fits cleared, big untouched.
  CHECK(text(directory, "SELECT over_quota_seen IS NOT NULL FROM mailboxes WHERE address = 'full@x.test'") == "t");
  CHECK(text(directory, "SELECT over_quota_seen IS NULL FROM mailboxes WHERE address = 'fits@x.test'") == "t");
  CHECK(text(directory, "SELECT over_quota_seen IS NULL FROM mailboxes WHERE address = 'big@x.test'") == "t");

  // The relay pool was read from the directory (the shard has none, which
  // would have said "no relay pool named"), and its refusing relay marked
  // down there.
  CHECK(delivery(shard, "r@y.org").first == "pending");
  CHECK_THAT(delivery(shard, "r@y.org").second, Catch::Contains("no relay of pool pool1 is reachable"));
  CHECK(text(directory, "SELECT down_until > now() FROM relays WHERE pool = 'pool1'") == "t");
  CHECK_THAT(text(directory, "SELECT last_error FROM relays WHERE pool = 'pool1'"),
             Catch::Contains(std::to_string(port)));
  // The destination's failure is counted on the shard.
  CHECK(text(shard, "SELECT failures FROM destination_backoff WHERE destination = 'pool1'") == "1");
  CHECK(text(directory, "SELECT count(*) FROM destination_backoff") == "0");

  // The DSN for big@ is a message of the shard, with an id in its range.
  auto dsn = shard.query("SELECT dsn_message_id FROM deliveries WHERE recipient = 'big@x.test'");
  REQUIRE_FALSE(dsn[0][0].is_null());
  const auto dsn_id = dsn[0][0].as<std::int64_t>();
  CHECK(common::shard_of(dsn_id) == 2);
  CHECK(text(shard, "SELECT envelope_from FROM messages WHERE id = " + std::to_string(dsn_id)) == "");
  CHECK(text(directory, "SELECT count(*) FROM messages") == "0");
  CHECK(text(shard, "SELECT state FROM messages WHERE id = " + std::to_string(too_big)) == "5");
  CHECK(text(shard, "SELECT state FROM messages WHERE id = " + std::to_string(quota)) == "3");
  CHECK(text(shard, "SELECT state FROM messages WHERE id = " + std::to_string(relayed)) == "3");
  fs::remove_all(root);
}

TEST_CASE("an unreachable directory defers the deliveries that need it, and they go through once it is back") {
  test::TestDatabase directory;
  test::TestDatabase shard;
  auto conn = shard.connect();
  claim_shard_identity(*conn, {.name = "q1", .id = 1, .weight = 1, .conninfo = shard.conninfo()});
  const auto root = fs::temp_directory_path() / ("wsmtp-db-shard-nodir-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fill_directory(directory, root, closed_port());
  auto local = routed(*conn, {plan("fits@x.test", "maildir", (root / "fits").string())});
  auto relayed = routed(*conn, {plan("r@y.org", "relay", "pool1")});

  const std::string gone = directory.conninfo() + " dbname=wsmtp_no_such_directory";
  Rig rig(shard.conninfo(), test::separate_directory_link(gone, shard.conninfo(), 1));
  REQUIRE(rig.deliverer.run_batch(*conn) == 2);

  CHECK(delivery(shard, "fits@x.test").first == "pending");
  CHECK_THAT(delivery(shard, "fits@x.test").second, Catch::Contains("4.3.0 mailbox quotas not read"));
  CHECK(delivery(shard, "r@y.org").first == "pending");
  CHECK_THAT(delivery(shard, "r@y.org").second, Catch::Contains("4.3.0 relay pool pool1 not read"));
  // Not the pool's failure: no backoff learnt from it.
  CHECK(text(shard, "SELECT count(*) FROM destination_backoff") == "0");
  CHECK(text(shard, "SELECT state FROM messages WHERE id = " + std::to_string(local)) == "3");
  CHECK(text(shard, "SELECT state FROM messages WHERE id = " + std::to_string(relayed)) == "3");
  CHECK(fs::is_empty(root / "fits" / "new"));

  // The directory is back (a deliverer configured with it): the retry delivers.
  shard.query("UPDATE deliveries SET next_attempt_at = now()");
  shard.query("UPDATE messages SET next_attempt_at = now()");
  Rig back(shard.conninfo(), test::separate_directory_link(directory.conninfo(), shard.conninfo(), 1));
  REQUIRE(back.deliverer.run_batch(*conn) >= 1);
  CHECK(delivery(shard, "fits@x.test").first == "delivered");
  CHECK_FALSE(fs::is_empty(root / "fits" / "new"));
  fs::remove_all(root);
}
