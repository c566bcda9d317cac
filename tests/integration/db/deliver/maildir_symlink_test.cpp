// A mailbox owner who replaces part of the Maildir with a symlink (issue 15
// item 3), seen through the whole deliverer: the delivery is deferred with a
// reason that names the symlink, the message goes back to ROUTED, and nothing
// is written where the link points.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "deliver.h"
#include "pg/body.h"
#include "pg/lease_keeper.h"
#include "pg/transitions.h"
#include "directory_links.h"
#include "test_database.h"
#include "transport_registry.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

const char* kBody = "From: s@x.org\r\nSubject: attack\r\n\r\nbody\r\n";

std::int64_t routed_to_maildir(pqxx::connection& conn, const std::string& rcpt, const std::string& maildir) {
  std::int64_t id = 0;
  {
    pqxx::work tx(conn);
    id = create_message(tx, {"s@x.org", "192.0.2.7", "client.example", "test", {rcpt}});
    append_body_chunk(tx, id, 0, kBody);
    REQUIRE(commit_received(tx, id, static_cast<std::int64_t>(std::string(kBody).size())));
    tx.commit();
  }
  auto routing = claim_for_routing(conn, {.owner = "router", .lease_time = 60s, .limit = 1, .max_expired_claims = 5});
  REQUIRE(routing.size() == 1);
  PlannedDelivery p;
  p.recipient = rcpt;
  p.original_rcpt = rcpt;
  p.transport = "maildir";
  p.destination = maildir;
  pqxx::work tx(conn);
  REQUIRE(finish_routing(tx, routing[0].lease, {p}));
  tx.commit();
  return id;
}

std::size_t files_under(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (!e.is_directory()) ++n;
  return n;
}

}  // namespace

TEST_CASE("a symlinked Maildir part defers the delivery with a reason naming it, and nothing lands outside") {
  const std::string part = GENERATE(as<std::string>{}, "", "tmp", "new");
  CAPTURE(part);
  test::TestDatabase db;
  auto conn = db.connect();
  const auto root = fs::temp_directory_path() / ("wsmtp-db-symlink-" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto box = root / "u" / "Maildir";
  const auto outside = root / "outside";
  for (const char* sub : {"tmp", "new", "cur"}) {
    fs::create_directories(box / sub);
    fs::create_directories(outside / sub);
  }
  std::ofstream(outside / "victim") << "precious\n";
  const auto link = part.empty() ? box : box / part;
  fs::remove_all(link);
  fs::create_directory_symlink(part.empty() ? outside : outside / part, link);

  auto id = routed_to_maildir(*conn, "u@x.test", box.string());
  deliver::DeliverConfig config;
  config.transports = {"maildir"};
  config.hostname = "mx.example.test";
  common::QueueConfig queue;
  common::pg::LeaseKeeper keeper({.conninfo = db.conninfo(), .lease_time = 60s, .stall_limit = 60s});
  deliver::Deliverer deliverer(config, queue, "worker-1", keeper,
                               deliver::standard_transports(config, "mx.example.test", [] {}),
                               test::one_server_link(db.conninfo()));
  REQUIRE(deliverer.run_batch(*conn) == 1);

  auto row =
      db.query("SELECT status, coalesce(last_error, '') FROM deliveries WHERE message_id = " + std::to_string(id));
  REQUIRE(row.size() == 1);
  CHECK(row[0][0].as<std::string>() == "pending");
  CHECK_THAT(row[0][1].as<std::string>(), Catch::Contains("symbolic link"));
  CHECK_THAT(row[0][1].as<std::string>(), Catch::Contains(box.string()));
  CHECK(db.query("SELECT state FROM messages WHERE id = " + std::to_string(id))[0][0].as<int>() == 3);
  CHECK(files_under(outside) == 1);  // the victim only
  fs::remove_all(root);
}
