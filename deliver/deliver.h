// One delivery pass: claim messages with due deliveries on our transports to
// open destinations, take a concurrency slot per destination
// (destination_gate.h), group their deliveries per transport and destination,
// hand each group to its transport (transport.h): the local ones, then one
// remote destination; then record each message's results with its 4->5 (all
// final, DSN queued) or 4->3 (some deferred, or not started for want of a
// slot) transition and the destinations' backoff. The batch's leases are renewed meanwhile
// (common/pg/lease_keeper.h); a message held, deleted or lost on the way gets
// nothing more started. Everything it claims, locks and records is on the
// one queue shard its connection reaches; the transports ask the directory
// through its DirectoryLink. Knows no transport's details.
#pragma once

#include <chrono>
#include <string>

#include <pqxx/pqxx>

#include "config.h"
#include "config/common_config.h"
#include "pg/claim_types.h"
#include "pg/directory_link.h"
#include "pg/lease_keeper.h"
#include "pg/worker_loop.h"
#include "transport_registry.h"

namespace wsmtp::deliver {

class Deliverer {
 public:
  // keeper renews the leases of each batch while run_batch works on it;
  // transports serve the deliveries by the name in their rows (a delivery on
  // a name none serves is deferred); directory is where they ask for relay
  // pools and quotas (the shard's own connection in the one-server layout).
  Deliverer(const DeliverConfig& config, const common::QueueConfig& queue, std::string owner,
            common::pg::LeaseKeeper& keeper, TransportRegistry transports, common::pg::DirectoryLink directory);

  // One batch on conn, a connection to the shard. Returns the number of
  // messages claimed. Throws for the shard's connection loss.
  int run_batch(pqxx::connection& conn);

 private:
  const DeliverConfig& config_;
  const common::QueueConfig& queue_;
  std::string owner_;
  common::pg::LeaseKeeper& keeper_;
  TransportRegistry transports_;
  common::pg::DirectoryLink directory_;
  common::pg::DestinationLimits limits_;                          // by config_.transports, for the claim
  common::pg::Cadence reclaim_cadence_{std::chrono::seconds(1)};  // expired leases: looked for once a second
};

}  // namespace wsmtp::deliver
