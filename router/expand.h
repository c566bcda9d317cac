// Recipient expansion: one envelope recipient in, the final deliveries out, in
// the order of the rule book: aliases (recursive, depth limit, loop detection),
// plus-addressing, forwarding (kept copy optional), mailing lists (posting
// policy, list headers, bounce address, X-Loop guard), catch-all for addresses
// that match nothing else, then the final route: a mailbox (Maildir or mbox,
// with the mailbox's transport tag), a relay pool for remote domains, or a
// bounce. Knows nothing about SQL or message states: it asks DirectoryLookup.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "directory_lookup.h"
#include "mail/headers.h"

namespace wsmtp::router {

struct ExpansionLimits {
  int max_depth = 10;
  int max_results = 20000;
  std::string relay_pool = "default";
};

struct FinalRecipient {
  std::string address;                         // lookup form
  std::string transport;                       // "maildir", "mbox", ... (the mailbox's tag), "relay",
                                               // or "bounce"
  std::string destination;                     // Maildir/spool path, relay pool, or "" for a bounce
  std::string bounce_reason;                   // for transport "bounce": enhanced code and text
  std::string prepend_headers{};               // list mail: List-* and X-Loop lines
  std::optional<std::string> envelope_from{};  // list mail: the list's bounce address
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
};

struct MessageContext {
  std::string envelope_from;  // lookup form of the sender, "" for the null sender
  // The message's header section; called only when a rule needs it (a list's
  // X-Loop check), so plain mail is routed without reading its body.
  std::function<const common::mail::HeaderBlock&()> headers;
};

inline constexpr const char* kBounceTransport = "bounce";

// Expands one recipient. A final recipient reached twice appears once.
// Throws what the DirectoryLookup throws (database failures).
Expansion expand_recipient(common::DirectoryLookup& directory, const std::string& recipient,
                           const MessageContext& message, const ExpansionLimits& limits);

// The header lines a list adds to its mail (RFC 2369, RFC 2919), each ending
// CRLF.
std::string list_headers(const common::MailingList& list);

}  // namespace wsmtp::router
