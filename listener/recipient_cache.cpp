#include "recipient_cache.h"

#include <iterator>

namespace wsmtp::listener {

bool RecipientCache::known(const std::string& key, Clock::time_point now) const {
  auto it = expiry_.find(key);
  return it != expiry_.end() && now < it->second;
}

void RecipientCache::remember_known(const std::string& key, Clock::time_point now) {
  if (ttl_.count() <= 0) return;
  if (expiry_.size() >= kMaxEntries && !expiry_.count(key)) {
    // Bounded memory whatever the traffic: drop what has expired, and if a
    // flood of distinct addresses filled the cache with live entries, start over.
    for (auto it = expiry_.begin(); it != expiry_.end();) it = now >= it->second ? expiry_.erase(it) : std::next(it);
    if (expiry_.size() >= kMaxEntries) expiry_.clear();
  }
  expiry_[key] = now + ttl_;
}

void RecipientCache::set_ttl(std::chrono::milliseconds ttl) {
  ttl_ = ttl;
  expiry_.clear();  // a reload may shorten the time: forget answers given under the old one
}

}  // namespace wsmtp::listener
