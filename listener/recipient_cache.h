// Remembers, for a short time, which local recipients exist, so a busy
// listener does not ask the database again for every RCPT to the same
// mailbox (Postfix keeps such answers in its proxymap and verify caches).
// Only "known local" answers are kept: a stale positive answer costs at most
// a bounce from the router for a mailbox deleted moments ago, whereas a stale
// negative one would refuse mail (5xx, permanent) for a mailbox just created.
// One cache per event loop, so no locking; time is passed in for tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <unordered_map>

namespace wsmtp::listener {

class RecipientCache {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxEntries = 50000;

  // ttl 0 disables the cache.
  explicit RecipientCache(std::chrono::milliseconds ttl) : ttl_(ttl) {}

  // True if key (a lookup key, lower-case local@domain) was known recently.
  bool known(const std::string& key, Clock::time_point now) const;
  void remember_known(const std::string& key, Clock::time_point now);
  void set_ttl(std::chrono::milliseconds ttl);
  std::size_t size() const { return expiry_.size(); }

 private:
  std::chrono::milliseconds ttl_;
  std::unordered_map<std::string, Clock::time_point> expiry_;
};

}  // namespace wsmtp::listener
