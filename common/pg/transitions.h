// The message state machine: the only C++ code that changes a message's state
// (DESIGN.md). One function per transition; each is a compare-and-set on the
// current state (and, for leased states, the lease token), so losing a race is
// an ordinary result (false / empty), not an error. Claims take leases with
// FOR UPDATE SKIP LOCKED so any number of workers on any hosts can run side by side.
// Every function throws pqxx exceptions for database failures; the caller's
// transaction then rolls back and nothing changed.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "msg_state.h"
#include "store.h"

namespace wsmtp::common::pg {

struct Lease {
  std::int64_t msg_id = 0;
  std::string token;  // uuid; finishing a claim compares it in the same statement
};

struct ClaimOptions {
  std::string owner;  // worker identity (host:pid)
  std::chrono::seconds lease_time{300};
  int limit = 10;
  int max_expired_claims = 5;  // a message whose claim expires this often is held
};

// --- listener ---------------------------------------------------------------

// Creates a message in state 0 (RECEIVING) with its envelope recipients.
std::int64_t create_message(pqxx::transaction_base& tx, const NewMessage& message);
// 0 -> 1 (RECEIVED). The caller sends 250 only after committing tx.
bool commit_received(pqxx::transaction_base& tx, std::int64_t msg_id, std::int64_t size);
// Deletes a message still in state 0 (an aborted receipt). Never touches state >= 1.
bool discard_receiving(pqxx::transaction_base& tx, std::int64_t msg_id);

// --- router -----------------------------------------------------------------

struct RoutingClaim {
  Lease lease;
  std::string envelope_from;
  std::vector<std::string> recipients;
  int expired_claims = 0;
};

// 1 -> 2 (ROUTING), and re-claims of state 2 whose lease expired. Runs its own
// transaction; returns what this worker now holds.
std::vector<RoutingClaim> claim_for_routing(pqxx::connection& conn, const ClaimOptions& options);

struct PlannedDelivery {
  std::string recipient;
  std::string original_rcpt;
  std::string transport;
  std::string destination;
  std::optional<std::string> bounce_reason;  // set: the recipient is final-failed already
};

// 2 -> 3 (ROUTED) with the delivery rows, in the caller's transaction. False if
// the lease is no longer ours (expired and taken by another router): roll back.
bool finish_routing(pqxx::transaction_base& tx, const Lease& lease, const std::vector<PlannedDelivery>& plan);

// --- deliverer --------------------------------------------------------------

struct DeliveryTask {
  std::int64_t delivery_id = 0;
  std::string recipient;
  std::string original_rcpt;
  std::string transport;
  std::string destination;
  int attempts = 0;
};

struct DeliveryClaim {
  Lease lease;
  std::string envelope_from;
  std::int64_t received_epoch = 0;   // seconds; stable across retries (Maildir names)
  std::vector<DeliveryTask> tasks;   // pending, due, for the transports asked for
};

// 3 -> 4 (DELIVERING) for messages with due deliveries on one of `transports`, or
// with no pending delivery at all (only finishing left), and re-claims of state 4
// whose lease expired. Runs its own transaction.
std::vector<DeliveryClaim> claim_for_delivery(pqxx::connection& conn, const ClaimOptions& options,
                                              const std::vector<std::string>& transports);

enum class DeliveryStatus { delivered, deferred, bounced };

struct DeliveryResult {
  std::int64_t delivery_id = 0;
  DeliveryStatus status = DeliveryStatus::deferred;
  std::string detail;                        // remote reply or local error
  std::chrono::seconds retry_after{0};       // for deferred
};

enum class FinishOutcome { lost_lease, done, deferred };

// Records the results and moves the message on, in the caller's transaction:
// 4 -> 5 (DONE) when no delivery is pending any more, otherwise 4 -> 3 with the
// earliest next attempt time. lost_lease: roll back, another worker owns it now.
FinishOutcome finish_delivery(pqxx::transaction_base& tx, const Lease& lease,
                              const std::vector<DeliveryResult>& results);

// --- reaper and operator ----------------------------------------------------

struct ResetCounts {
  int reset = 0;
  int held = 0;
};

// Expired leases in `from` (ROUTING or DELIVERING) go back one state (2->1, 4->3);
// those that expired max_expired_claims times are held instead of retried.
ResetCounts reset_expired_leases(pqxx::connection& conn, MsgState from, int max_expired_claims, int limit);

struct ResetFilter {
  std::optional<std::int64_t> id;
  std::optional<MsgState> state;                 // ROUTING or DELIVERING
  std::optional<std::chrono::seconds> older_than;  // time in the current state
  bool force = false;                            // also messages whose lease is live
  int limit = 10000;
};

struct ResetCandidate {
  std::int64_t msg_id;
  MsgState from;
  std::string lease_owner;
  bool lease_live;
};

// The messages a reset with this filter would touch (for --dry-run and reporting).
std::vector<ResetCandidate> reset_candidates(pqxx::transaction_base& tx, const ResetFilter& filter);
// Operator reset 2->1 / 4->3, clearing the lease. Returns the ids moved.
std::vector<std::int64_t> reset_messages(pqxx::transaction_base& tx, const ResetFilter& filter);

bool hold_message(pqxx::transaction_base& tx, std::int64_t msg_id, const std::string& reason);
bool release_message(pqxx::transaction_base& tx, std::int64_t msg_id);

}  // namespace wsmtp::common::pg
