// Router bookkeeping around the state machine that is not itself a state
// change: the backlog the supervisor scales on, the failure record of a message
// whose routing threw (poison messages), pruning of the fair-queueing clocks,
// and reading a message's header section.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <pqxx/pqxx>

#include "mail/headers.h"
#include "pg/transitions.h"

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

struct RoutingFailure {
  bool recorded = false;  // false: the lease was no longer ours, nothing written
  int failures = 0;
  bool held = false;
};

// Runs its own transaction (the routing transaction has rolled back). Records
// error as the message's last_error and counts the failure; at max_failures
// the message is held with the error as its reason (visible in wsmtpctl show,
// released by an operator). Otherwise the lease is shortened to 2^(failures-1)
// seconds (at most max_wait) so the retry comes soon, with backoff, instead of
// after a whole lease time. The state is untouched: the claim of an expired
// state-2 lease (claim_for_routing) is what retries it. The lease's owner is
// emptied (the router has handed the message back), so that expiry is not
// counted in expired_claims: the failure is counted here instead, once.
RoutingFailure record_routing_failure(pqxx::connection& conn, const Lease& lease, const std::string& error,
                                      int max_failures, std::chrono::seconds max_wait);

// Deletes up to limit fairness clocks that fell behind now (they mean the same
// as no row). Returns how many went.
int prune_route_fairness(pqxx::transaction_base& tx, int limit);

// The header section of a stored message (read chunk by chunk, bounded by
// limits).
mail::HeaderBlock read_message_headers(pqxx::transaction_base& tx, std::int64_t msg_id,
                                       const mail::HeaderLimits& limits = {});

}  // namespace wsmtp::common::pg
