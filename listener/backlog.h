// Backpressure at the door (issue 16): which backlog keys a message counts
// under (schema 020 keeps the totals per key) and whether a sender is over its
// quota, given the totals BacklogWatch last read. Pure: no SQL, no threads, no
// clock, so the rules are unit-tested as a table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wsmtp::listener {

// Who is sending, for keying and quotas. An authenticated session is keyed by
// its user alone (a hijacked account is stopped whatever address it uses); a
// trusted or limit-exempt client (a local application, the own network) by its
// client key, against the trusted quota; everyone else by the sender's domain
// and by the client.
enum class SenderKind { authenticated, trusted, other };

// [listener] backlog_quota_*: undelivered messages (states 1-4) per key; 0: no limit.
struct BacklogQuotas {
  std::uint64_t sender_domain = 10000;
  std::uint64_t client = 10000;
  std::uint64_t user = 10000;
  std::uint64_t trusted = 0;
  // The smallest quota in force: below it no key matters. 0 when all are off.
  std::uint64_t threshold() const;
};

// The keys, sorted: "u:<auth_user>"; or "c:<client_key>"; or
// "d:<lower-case domain of envelope_from>" (none for the null sender) and
// "c:<client_key>". client_key is the listener's limit_key() (an IPv4 address,
// an IPv6 network).
std::vector<std::string> backlog_keys(SenderKind kind, std::string_view auth_user, std::string_view client_key,
                                      std::string_view envelope_from);

// Undelivered messages per key; only keys at or above the threshold are present.
using BacklogTotals = std::unordered_map<std::string, std::uint64_t>;

struct OverQuota {
  std::string key;
  std::uint64_t total = 0;
  std::uint64_t quota = 0;
};

// The first of keys whose total has reached its quota (u: user, d: sender
// domain, c: trusted for a trusted sender, else client); nullopt if none.
std::optional<OverQuota> over_quota(const BacklogTotals& totals, const std::vector<std::string>& keys, SenderKind kind,
                                    const BacklogQuotas& quotas);

// What a refusal names for the client: "example.com", "192.0.2.1", "user alice".
std::string backlog_subject(std::string_view key);

}  // namespace wsmtp::listener
