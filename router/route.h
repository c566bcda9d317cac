// One routing pass: claim a batch of received messages, expand every recipient,
// and write the delivery plans (plus list fan-outs, auto-replies and reports of
// refused list members) with the 2->3 transitions in one transaction for the
// whole batch (split only where list fan-outs pass max_list_members rows): a
// router killed at any point leaves nothing or the whole plan of every message
// in the transaction. If the batch fails, its messages are routed again one by one,
// each in its own transaction, so one bad message never holds up the others; a
// message whose routing throws on its own is counted and, after
// max_routing_failures, held with its error (a poison message never blocks the
// queue). A message that ever lost a lease (a crash while routing it) is always
// routed alone, so a message that kills the router cannot take a batch with it.
// The batch's leases are renewed meanwhile (common/pg/lease_keeper.h).
#pragma once

#include <pqxx/pqxx>

#include "config.h"
#include "config/common_config.h"
#include "pg/lease_keeper.h"

namespace wsmtp::router {

// Returns the number of messages claimed. Throws pqxx::broken_connection (the
// caller reconnects; the leases taken expire and are claimed again).
// reclaim_expired: also take messages whose routing lease expired (workers do
// it on a cadence, see ClaimOptions). keeper renews the batch's leases until
// its plans are committed and hears of each routed chunk.
int route_batch(pqxx::connection& conn, const RouterConfig& config, const common::QueueConfig& queue,
                const std::string& owner, common::pg::LeaseKeeper& keeper, bool reclaim_expired = true);

}  // namespace wsmtp::router
