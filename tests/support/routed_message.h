// Test setup shared by the deliverer's database tests: a message received as
// given chunks and routed to one recipient, ready to be claimed for delivery.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include "pg/body.h"
#include "pg/transitions.h"

namespace wsmtp::test {

// Stores a message from s@x.org to a@y.org whose body is `chunks`, commits it
// as received and routes it to a@y.org over `transport` to `destination`.
inline void received_and_routed(pqxx::connection& conn, const std::vector<std::string>& chunks,
                                const std::string& transport, const std::string& destination) {
  using namespace common::pg;
  std::int64_t size = 0;
  {
    pqxx::work tx(conn);
    auto id = create_message(tx, {"s@x.org", "192.0.2.7", "client.example", "test", {"a@y.org"}});
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      append_body_chunk(tx, id, static_cast<int>(i), chunks[i]);
      size += static_cast<std::int64_t>(chunks[i].size());
    }
    REQUIRE(commit_received(tx, id, size));
    tx.commit();
  }
  auto routing = claim_for_routing(
      conn, {.owner = "router", .lease_time = std::chrono::seconds(60), .limit = 1, .max_expired_claims = 5});
  REQUIRE(routing.size() == 1);
  PlannedDelivery plan;
  plan.recipient = plan.original_rcpt = "a@y.org";
  plan.transport = transport;
  plan.destination = destination;
  pqxx::work tx(conn);
  REQUIRE(finish_routing(tx, routing[0].lease, {plan}));
  tx.commit();
}

}  // namespace wsmtp::test
