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
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

#include "msg_state.h"
#include "pg/claim_types.h"
#include "pg/list_fanout.h"
#include "pg/transitions_generated.h"
#include "new_message.h"

namespace wsmtp::common::pg {

struct ClaimOptions {
  std::string owner;  // worker identity (host:pid)
  std::chrono::seconds lease_time{300};
  int limit = 10;
  int max_expired_claims = 5;  // a message whose claim expires this often is held
  // Look for expired leases (re-claim them, or hold them past
  // max_expired_claims) before fresh work. Workers do it about once a second
  // rather than in every claim: in a burst most claims found none, at three
  // statements each.
  bool reclaim_expired = true;
  // claim_for_delivery: at most this many deferred messages due again (the
  // retry lane) per claim, the rest of `limit` going to fresh mail; nullopt:
  // up to limit.
  std::optional<int> retry_limit{};
};

// --- listener ---------------------------------------------------------------

// Creates a message in state 0 (RECEIVING) with its envelope recipients under
// msg_id, an id from reserve_message_ids (the listener's queue id, given out
// before the message is stored).
void create_message(pqxx::transaction_base& tx, std::int64_t msg_id, const NewMessage& message);
// The same under a fresh id, returned (tools and tests).
std::int64_t create_message(pqxx::transaction_base& tx, const NewMessage& message);
// The fair-order stamp for a message in state 0 about to be committed, taken
// with asynchronous commit (run it in a transaction of its own) so the commit
// itself holds no fairness row. fair_client: the client whose clock it
// advances ("" for none, NewMessage::fair_client). nullopt: no such message in state 0.
std::optional<std::int64_t> stamp_receiving(pqxx::transaction_base& tx, std::int64_t msg_id,
                                            const std::string& fair_client);
// 0 -> 1 (RECEIVED). The caller sends 250 only after committing tx. Without a
// route_vtime from stamp_receiving the schema trigger stamps the message.
bool commit_received(pqxx::transaction_base& tx, std::int64_t msg_id, std::int64_t size,
                     std::optional<std::int64_t> route_vtime = std::nullopt);
// Complete small messages (envelope and whole body) are stored a batch at a
// time by one statement (schema/013_receive_one_statement.sql), with ids
// reserved ahead so that they are known before the commit:
// `count` fresh message ids (1..1000), in a statement of their own or any
// transaction (ids are never handed out twice, committed or not).
std::vector<std::int64_t> reserve_message_ids(pqxx::transaction_base& tx, int count);
// Creates every message of the batch directly in state 1 with its recipients,
// body and fair-order stamp, ids[i] for batch[i], in one statement; throws
// unless all were created. The caller answers 250 only after that commits; if
// the commit's answer is lost, the ids tell whether it happened.
void store_received_batch(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids,
                          const std::vector<CompleteMessage>& batch);
// Deletes a message still in state 0 (an aborted receipt). Never touches state >= 1.
bool discard_receiving(pqxx::transaction_base& tx, std::int64_t msg_id);

// Messages WSMTP generates itself (DSNs, auto-replies): create_generated_message,
// transitions_generated.h (included above).

// --- router -----------------------------------------------------------------

struct RoutingClaim {
  Lease lease;
  std::string envelope_from;
  std::vector<std::string> recipients;
  int expired_claims = 0;
};

// 1 -> 2 (ROUTING), and re-claims of state 2 whose lease expired. Runs its own
// transaction; returns what this worker now holds. Fresh messages are taken in
// fair order (messages.route_vtime, schema 003): a flooding sender or client
// cannot push everyone else's mail behind its backlog.
std::vector<RoutingClaim> claim_for_routing(pqxx::connection& conn, const ClaimOptions& options);

struct PlannedDelivery {
  std::string recipient;
  std::string original_rcpt;
  std::string transport;
  std::string destination;
  std::optional<std::string> bounce_reason;             // set: the recipient is final-failed already
  std::string prepend_headers{};                        // list mail: header lines for the deliverer to prepend
  std::optional<std::string> envelope_from_override{};  // list mail: the list's bounce address
};

// 2 -> 3 (ROUTED) with the delivery rows, in the caller's transaction: first the
// plan, then each list's bulk fan-out (a member already in the plan keeps its
// planned row). False if the lease is no longer ours (expired and taken by
// another router): roll back.
bool finish_routing(pqxx::transaction_base& tx, const Lease& lease, const std::vector<PlannedDelivery>& plan,
                    const std::vector<ListFanout>& fanouts = {});

// One message's delivery plan, for finishing a batch.
struct RoutingPlan {
  Lease lease;
  std::vector<PlannedDelivery> deliveries;
  std::vector<ListFanout> fanouts;
};

struct RoutedMessage {
  std::int64_t msg_id = 0;
  int deliveries = 0;  // rows written (plan and list fan-outs)
};

// 2 -> 3 for a batch, in the caller's transaction and in two statements however
// many messages and recipients: one compare-and-set of every (id, lease token)
// pair with all planned rows, then all list fan-outs. Only messages whose lease
// is still ours move and get rows; the others are left out of the result (the
// caller must not act on them) and untouched. Throws on database errors: the
// caller rolls back, and nothing of the batch was written. members: as for
// insert_list_fanouts (nullptr: tx's database is also the directory).
std::vector<RoutedMessage> finish_routing(pqxx::transaction_base& tx, const std::vector<RoutingPlan>& plans,
                                          const std::vector<BulkMember>* members = nullptr);

// --- deliverer --------------------------------------------------------------

// A claim's Lease, DeliveryTask and DeliveryClaim are in claim_types.h.

// 3 -> 4 (DELIVERING) for messages with due deliveries on one of `transports`
// to an open destination (neither all its `limits` slots held nor backed off),
// or with no pending delivery at all (only finishing left), and re-claims of
// state 4 whose lease expired. Runs its own transaction. Fresh messages are
// taken in fair order (route_vtime, as the router's), deferred ones due again
// by their next attempt, at most options.retry_limit of them (schema 022).
std::vector<DeliveryClaim> claim_for_delivery(pqxx::connection& conn, const ClaimOptions& options,
                                              const std::vector<std::string>& transports,
                                              const DestinationLimits& limits = {});

enum class DeliveryStatus { delivered, deferred, bounced };

struct DeliveryResult {
  std::int64_t delivery_id = 0;
  DeliveryStatus status = DeliveryStatus::deferred;
  std::string detail;                   // remote reply or local error
  std::chrono::seconds retry_after{0};  // for deferred
  // Deferred because the destination failed as a whole (no relay of the pool
  // reachable, the LMTP server down, the mailbox directory unwritable): the
  // deliverer backs the destination off rather than retrying per message.
  bool destination_failed = false;
};

enum class FinishOutcome { lost_lease, done, deferred };

struct FinishOptions {
  // A deferred delivery of a message older than this is final: bounced with
  // 4.4.7 (RFC 3463 "delivery time expired") and reported.
  std::chrono::seconds max_queue_lifetime{5 * 24 * 3600};
  // A message still pending this long after arrival gets one delay warning; 0: never.
  std::chrono::seconds delay_warning_after{0};
  std::string reporting_mta = "localhost";  // host name written into DSNs
};

// Records the results and moves the message on, in the caller's transaction:
// 4 -> 5 (DONE) when no delivery is pending any more, otherwise 4 -> 3 with the
// earliest next attempt time. On 4 -> 5 the sender gets one DSN covering every
// bounced delivery of the message (router refusals included), never when the
// sender is <>; the DSN is a new message in state 1 of the same transaction.
// lost_lease: roll back, another worker owns it now.
// first_claim: the claim was the message's first (DeliveryClaim::first_claim);
// with no result at all the message returns to the fresh lane (022).
FinishOutcome finish_delivery(pqxx::transaction_base& tx, const Lease& lease,
                              const std::vector<DeliveryResult>& results, const FinishOptions& options = {},
                              bool first_claim = false);

// The common case in one statement for a whole batch: messages whose every
// result is "delivered" and which have no other pending delivery get their
// results recorded and move 4 -> 5, each only if its lease is still ours (no
// DSN can be due: nothing bounced). Returns the ids it finished; every other
// message of the batch goes through finish_delivery.
struct DeliveredMessage {
  Lease lease;
  std::vector<DeliveryResult> results;  // all DeliveryStatus::delivered
};
std::vector<std::int64_t> finish_delivered_batch(pqxx::transaction_base& tx,
                                                 const std::vector<DeliveredMessage>& messages);

// --- leases of a working worker ----------------------------------------------

// What a renewal found for one lease. held: still ours, but an operator held
// the message meanwhile (finish what is in flight, start nothing more for it).
// lost: another worker or the reaper took it (the token changed). deleted: the
// row is gone (wsmtpctl delete).
enum class LeaseStatus { ours, held, lost, deleted };

struct LeaseCheck {
  std::int64_t msg_id = 0;
  LeaseStatus status = LeaseStatus::ours;
  bool renewed = false;  // its expiry was moved to now() + lease_time
};

// Renews the leases of `leases` (all in `leased`: ROUTING or DELIVERING) that
// are still ours, in its own transaction and one statement for the batch:
// each expiry becomes now() + lease_time, compared with its lease token, and
// only where less than five sixths of lease_time is left (so calls every
// lease_time/3 renew each time, and calls more often than every lease_time/6
// mostly only read). A row another transaction has locked (our own
// worker finishing it, an operator's hold) is skipped this time, never waited
// for. Returns one check per lease, in order. Never touches expired_claims:
// a renewed lease is one whose worker is still working.
std::vector<LeaseCheck> renew_leases(pqxx::connection& conn, MsgState leased, const std::vector<Lease>& leases,
                                     std::chrono::seconds lease_time);

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
  std::optional<MsgState> state;                   // ROUTING or DELIVERING
  std::optional<std::chrono::seconds> older_than;  // time in the current state
  bool force = false;                              // also messages whose lease is live
  int limit = 10000;
  std::optional<std::string> sender;  // exact envelope sender
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

// 2 -> 1 (the documented reset) and held, in the router's transaction: routing
// found that the message needs the operator (mail to postmaster with nowhere to
// go). The lease is cleared, so a release makes it claimable at once. False if
// the lease is no longer ours.
bool hold_unroutable(pqxx::transaction_base& tx, const Lease& lease, const std::string& reason);
// Holds and releases without a state move: transitions_hold.h.

}  // namespace wsmtp::common::pg
