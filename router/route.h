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
// The batch's leases are renewed meanwhile (common/pg/lease_keeper.h). All of
// it happens in the messages' shard; only the directory's questions (and the
// auto-replies' once-per-period records) go to the directory's database when
// that is another one (common/pg/directory_link.h).
#pragma once

#include <pqxx/pqxx>

#include "config.h"
#include "config/common_config.h"
#include "pg/directory_link.h"
#include "pg/lease_keeper.h"

namespace wsmtp::router {

// Returns the number of messages claimed. conn is the shard's connection;
// link says where the directory is asked (in the shard's transactions when it
// is the shard's database). Throws on a connection error, the shard's or the
// directory's (pqxx::broken_connection; the link is reset first): the caller
// reconnects, and the leases taken expire and are claimed again.
// reclaim_expired: also take messages whose routing lease expired (workers do
// it on a cadence, see ClaimOptions). keeper renews the batch's leases until
// its plans are committed and hears of each routed chunk.
int route_batch(pqxx::connection& conn, common::pg::DirectoryLink& link, const RouterConfig& config,
                const common::QueueConfig& queue, const std::string& owner, common::pg::LeaseKeeper& keeper,
                bool reclaim_expired = true);

}  // namespace wsmtp::router
