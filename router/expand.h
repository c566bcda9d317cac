// Recipient expansion: one envelope recipient in, the final deliveries out.
// Aliases are followed recursively with a depth limit and loop detection; a
// mailbox becomes a Maildir delivery, a remote address a relay delivery, and an
// unknown local address a bounce. Knows nothing about SQL or message states.
#pragma once

#include <string>
#include <vector>

#include "directory_lookup.h"

namespace wsmtp::router {

struct ExpansionLimits {
  int max_depth = 10;
  int max_results = 20000;
  std::string relay_pool = "default";
};

struct FinalRecipient {
  std::string address;      // lookup form
  std::string transport;    // "maildir", "relay", or "bounce"
  std::string destination;  // Maildir path, relay pool, or "" for a bounce
  std::string bounce_reason;  // for transport "bounce": enhanced code and text
  friend bool operator==(const FinalRecipient&, const FinalRecipient&) = default;
};

inline constexpr const char* kBounceTransport = "bounce";

// Expands one recipient. Duplicates (an address reached twice) appear once.
// Throws what the DirectoryLookup throws (database failures).
std::vector<FinalRecipient> expand_recipient(common::DirectoryLookup& directory, const std::string& recipient,
                                             const ExpansionLimits& limits);

}  // namespace wsmtp::router
