// The state machine's holds and releases (DESIGN.md: a poison message is held
// so it cannot clog the works; an operator can inspect and release it). With
// transitions.cpp and transitions_bounce.cpp this is the only code that writes
// a message's state, held flag, lease or expiry counters
// (tests/unit/state_writers_test.py checks it). The holds that also move the
// state (hold_exhausted, hold_unroutable) are in transitions.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "pg/transitions.h"

namespace wsmtp::common::pg {

using MessageIds = std::vector<std::int64_t>;

// --- operator ----------------------------------------------------------------

// Holds messages not DONE and not held yet; returns the ids held (sorted). A
// message under a live lease stays with its worker, which learns of the hold
// at its next renewal.
MessageIds hold_messages(pqxx::transaction_base& tx, const MessageIds& ids, const std::string& reason);
// Releases held messages with a fresh set of attempts (expired_claims and
// routing_failures zeroed) and wakes both stages; returns the ids released.
MessageIds release_messages(pqxx::transaction_base& tx, const MessageIds& ids);
// The same for one message: true if it changed.
bool hold_message(pqxx::transaction_base& tx, std::int64_t msg_id, const std::string& reason);
bool release_message(pqxx::transaction_base& tx, std::int64_t msg_id);

// --- router ------------------------------------------------------------------

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

}  // namespace wsmtp::common::pg
