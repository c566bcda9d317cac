// The operator's bounce (wsmtpctl bounce), a transition of the state machine
// kept beside transitions.cpp: gives a message up in whatever state it can be
// given up in, reports every failed recipient to the sender at once (RFC 3464,
// through the DSN builder, pg/dsn_messages.h) and moves the message
// to DONE, all in the caller's transaction. It decides nothing about selection
// (that is wsmtpctl's ctl/db/message_filter.h) and prints nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "msg_state.h"

namespace wsmtp::common::pg {

enum class BounceVerdict {
  bounced,          // deliveries given up, DSN queued (unless the sender is <>), message DONE
  no_such_message,  // the id names no message
  receiving,        // state 0: the body is still arriving; no 250 was given, nothing to bounce
  already_done,     // state 5
  nothing_pending,  // ROUTED/DELIVERING with every delivery final and already reported
  live_lease,       // DELIVERING under a live lease and no force: a worker is delivering it now
};

struct BounceOptions {
  std::string reason = "5.0.0 delivery cancelled by the postmaster";  // status and text in the DSN
  std::string reporting_mta = "localhost";                            // host name written into the DSN
  // Also bounce messages in DELIVERING whose lease is live. The worker's finish
  // then fails its lease check, but what it already handed to a mailbox or a
  // relay stays delivered: the recipient may get the message and the sender a DSN.
  bool force = false;
};

struct BounceResult {
  std::int64_t msg_id = 0;
  BounceVerdict verdict = BounceVerdict::no_such_message;
  std::optional<MsgState> from;        // the state it was found in
  bool held = false;                   // it was held
  int bounced = 0;                     // deliveries (state 3/4) or envelope recipients (state 1/2) failed now
  int reported = 0;                    // failed deliveries the DSN(s) report, earlier ones included
  std::optional<std::int64_t> dsn_id;  // the report to the message's sender
  bool null_sender = false;            // no DSN: the sender is <> (RFC 3464 §2, RFC 5321 §4.5.5)
  std::string lease_owner;             // live_lease: who holds it; bounced: whose lease was taken over
  std::string lease_expires;           // UTC ISO-8601
};

// Per state, for each id (locked FOR UPDATE, waiting at most 30 s for a worker
// that holds the row):
//  RECEIVED (1), ROUTING (2): every envelope recipient becomes a delivery with
//    transport 'bounce', failed with options.reason (as the router records a
//    refused recipient), and the message goes 1->2->3->4->5 (or 2->...),
//    the machine's own steps, in this transaction. A router's lease in ROUTING,
//    live or not, is taken over: routing writes nothing outside the database,
//    and its finish then fails the lease check and rolls back.
//  ROUTED (3), DELIVERING (4) with an expired lease (or force): every pending
//    delivery fails with options.reason, and the message goes 3->4->5 (4->5).
//  Then one DSN per reverse path covers every failed delivery not yet reported
//  (router refusals included), created as a new message in state 1.
// Results come in the order of ids. Throws pqxx errors (the caller rolls back).
std::vector<BounceResult> bounce_messages(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids,
                                          const BounceOptions& options);

}  // namespace wsmtp::common::pg
