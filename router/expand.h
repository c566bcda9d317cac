// Recipient expansion: one envelope recipient in, the final deliveries out, in
// the order of the rule book: aliases (recursive, depth limit, loop detection),
// plus-addressing, forwarding (kept copy optional), mailing lists (posting
// policy, list headers, bounce address, X-Loop guard), catch-all for addresses
// that match nothing else, then the final route: a mailbox (Maildir or mbox,
// with the mailbox's transport tag), a relay pool for remote domains, or a
// bounce. Knows nothing about SQL or message states: it asks DirectoryLookup.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "directory_lookup.h"
#include "mail/headers.h"

namespace wsmtp::router {

struct ExpansionLimits {
  int max_depth = 10;
  // Addresses one envelope recipient may visit (alias and forwarding targets,
  // catch-alls, list members that need expanding): past it the recipient's
  // whole expansion is dropped for one bounce, so no directory makes us do
  // unbounded work, and nobody gets a partial delivery.
  int max_expansion = 20000;
  // Members of all the lists one message fans out, together: a list that would
  // pass it bounces (5.2.4) instead of being expanded.
  std::int64_t max_list_members = 100000;
  std::string relay_pool = "default";
  std::string postmaster;  // RouterConfig::postmaster: lookup key, "" when not set
};

// What one message's expansion has used so far, shared by its envelope
// recipients (ExpansionLimits::max_list_members).
struct ExpansionBudget {
  enum class ListOutcome { fanned_out, no_members, none_deliverable, too_large };
  std::int64_t list_members = 0;
  std::map<std::string, ListOutcome> lists;  // lists already expanded for the message
};

struct FinalRecipient {
  std::string address;                         // lookup form
  std::string transport;                       // "maildir", "mbox", ... (the mailbox's tag), "relay",
                                               // "bounce", or "hold"
  std::string destination;                     // Maildir/spool path, relay pool, or "" for a bounce
  std::string bounce_reason;                   // for "bounce": enhanced code and text; for "hold": why
  std::string prepend_headers{};               // list mail: List-* and X-Loop lines
  std::optional<std::string> envelope_from{};  // list mail: the list's bounce address; for a bounce
                                               // inside a list's fan-out, where the report goes
  friend bool operator==(const FinalRecipient&, const FinalRecipient&) = default;
};

// A list whose plain members (mailboxes, remote addresses) the database fans
// out in one statement; members needing expansion are in `recipients` already.
struct ListUse {
  std::string list_address;
  std::string prepend_headers;
  std::string envelope_from;
};

struct Expansion {
  std::vector<FinalRecipient> recipients;
  std::vector<ListUse> lists;
  // Mailboxes reached without a list in between that have an active auto-reply.
  std::vector<std::string> autoreply_mailboxes;
  // Limits that refused work, for the operator's log (one line each).
  std::vector<std::string> warnings;
};

struct MessageContext {
  std::string envelope_from;  // lookup form of the sender, "" for the null sender
  // The message's header section; called only when a rule needs it (a list's
  // X-Loop check), so plain mail is routed without reading its body.
  std::function<const common::mail::HeaderBlock&()> headers;
};

inline constexpr const char* kBounceTransport = "bounce";
// Not a delivery: the whole message must wait for the operator (postmaster
// with nowhere to go). plan_message turns it into Plan::hold_reason.
inline constexpr const char* kHoldTransport = "hold";

// Expands one recipient. A final recipient reached twice appears once. A bounce
// inside a list's fan-out carries the list's bounce address (envelope_from): the
// report goes to the list, not to the poster. A list with no member left to
// deliver to bounces itself (5.2.4). budget is the message's, shared by its
// recipients. Throws what the DirectoryLookup throws (database failures).
Expansion expand_recipient(common::DirectoryLookup& directory, const std::string& recipient,
                           const MessageContext& message, const ExpansionLimits& limits, ExpansionBudget& budget);

// The same with a budget of its own (a message with one recipient).
Expansion expand_recipient(common::DirectoryLookup& directory, const std::string& recipient,
                           const MessageContext& message, const ExpansionLimits& limits);

// The header lines a list adds to its mail (RFC 2369, RFC 2919), each ending
// CRLF.
std::string list_headers(const common::MailingList& list);

}  // namespace wsmtp::router
