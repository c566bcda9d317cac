// Router bookkeeping around the state machine that writes no state field: the
// backlog the supervisor scales on, pruning of the fair-queueing clocks, and
// reading a message's header section. (The failure record of a message whose
// routing threw is the state machine's: record_routing_failure,
// transitions_hold.h.)
#pragma once

#include <cstdint>
#include <string>

#include <pqxx/pqxx>

#include "mail/headers.h"

namespace wsmtp::common::pg {

// The router's session: its commits do not wait for the WAL flush
// (synchronous_commit = off). Safe because everything a router writes can be
// redone from what the listener committed durably: a routing commit lost in a
// database crash leaves its messages in state 2 under leases that expire and
// are routed again, exactly as if the router had died before committing, and
// the reports and auto-replies it queued are lost with it, never half. Nothing
// downstream acts on a routing commit before a durable commit of its own (the
// deliverer's claim) has flushed the WAL past it. Only the first call on a
// connection costs round trips (libpqxx remembers the setting, and restores it
// if it reconnects).
void configure_router_session(pqxx::connection_base& conn);

// Messages waiting for a router (state 1, not held), counted up to cap.
std::int64_t routing_backlog(pqxx::transaction_base& tx, std::int64_t cap = 1000000);

// Deletes up to limit fairness clocks that fell behind now (they mean the same
// as no row). Returns how many went.
int prune_route_fairness(pqxx::transaction_base& tx, int limit);

// The header section of a stored message (read chunk by chunk, bounded by
// limits).
mail::HeaderBlock read_message_headers(pqxx::transaction_base& tx, std::int64_t msg_id,
                                       const mail::HeaderLimits& limits = {});

}  // namespace wsmtp::common::pg
