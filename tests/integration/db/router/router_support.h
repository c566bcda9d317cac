// Shared setup for the router's database tests: a directory, received
// messages, and a router pass, against a real PostgreSQL.
#pragma once

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "pg/body.h"
#include "pg/directory.h"
#include "pg/directory_link.h"
#include "pg/transitions.h"
#include "router/config.h"
#include "router/route.h"
#include "test_database.h"

namespace wsmtp::test {

inline std::int64_t receive(pqxx::connection& conn, const std::string& from, const std::vector<std::string>& rcpts,
                            const std::string& body = "Subject: test\r\n\r\nhello\r\n",
                            const std::string& client = "192.0.2.7") {
  pqxx::work tx(conn);
  auto id = common::pg::create_message(tx, {from, client, "client.example", "test", rcpts});
  common::pg::append_body_chunk(tx, id, 0, body);
  REQUIRE(common::pg::commit_received(tx, id, static_cast<std::int64_t>(body.size())));
  tx.commit();
  return id;
}

// The one-server layout: the directory is the shard's own database.
inline common::pg::DirectoryLink one_server_link(pqxx::connection& conn) {
  const common::DatabaseConfig database{
      .conninfo = conn.options(), .shards = {{.name = "default", .id = 0, .weight = 1, .conninfo = conn.options()}}};
  return common::pg::DirectoryLink(database, database.shards.front());
}

// Routes until nothing is left in state 1; returns the messages claimed.
inline int route_all(pqxx::connection& conn, const router::RouterConfig& config = {},
                     const common::QueueConfig& queue = {}) {
  int total = 0;
  common::pg::LeaseKeeper keeper(
      {.conninfo = conn.options(), .lease_time = queue.lease_time, .stall_limit = queue.lease_time});
  auto link = one_server_link(conn);
  for (int n; (n = router::route_batch(conn, link, config, queue, "router-test", keeper)) > 0;) total += n;
  return total;
}

inline void add_directory(pqxx::connection& conn, const std::string& domain, const std::vector<std::string>& users) {
  pqxx::work tx(conn);
  common::pg::add_domain(tx, domain);
  for (const auto& u : users) common::pg::add_mailbox(tx, u + "@" + domain, domain, "/m/" + u);
  tx.commit();
}

inline int count(TestDatabase& db, const std::string& sql) { return db.query(sql)[0][0].as<int>(); }

}  // namespace wsmtp::test
