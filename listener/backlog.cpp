// A key's quota is found from its prefix, so the totals need no kind column and
// one key read by the watch serves every session that shares it.
#include "backlog.h"

#include <algorithm>

#include "ascii.h"

namespace wsmtp::listener {

std::uint64_t BacklogQuotas::threshold() const {
  std::uint64_t smallest = 0;
  for (auto q : {sender_domain, client, user, trusted})
    if (q != 0 && (smallest == 0 || q < smallest)) smallest = q;
  return smallest;
}

std::vector<std::string> backlog_keys(SenderKind kind, std::string_view auth_user, std::string_view client_key,
                                      std::string_view envelope_from) {
  std::vector<std::string> keys;
  if (kind == SenderKind::authenticated) {
    keys.push_back("u:" + std::string(auth_user));
    return keys;
  }
  if (!client_key.empty()) keys.push_back("c:" + std::string(client_key));
  if (kind == SenderKind::other) {
    auto at = envelope_from.rfind('@');
    if (at != std::string_view::npos && at + 1 < envelope_from.size())
      keys.push_back("d:" + common::to_lower_ascii(envelope_from.substr(at + 1)));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::optional<OverQuota> over_quota(const BacklogTotals& totals, const std::vector<std::string>& keys, SenderKind kind,
                                    const BacklogQuotas& quotas) {
  for (const auto& key : keys) {
    std::uint64_t quota = 0;
    if (key.starts_with("u:"))
      quota = quotas.user;
    else if (key.starts_with("d:"))
      quota = quotas.sender_domain;
    else if (key.starts_with("c:"))
      quota = kind == SenderKind::other ? quotas.client : quotas.trusted;
    if (quota == 0) continue;
    auto it = totals.find(key);
    if (it != totals.end() && it->second >= quota) return OverQuota{key, it->second, quota};
  }
  return std::nullopt;
}

std::string backlog_subject(std::string_view key) {
  auto rest = std::string(key.substr(std::min<std::size_t>(2, key.size())));
  return key.starts_with("u:") ? "user " + rest : rest;
}

}  // namespace wsmtp::listener
