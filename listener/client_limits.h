// Admission control shared by all event loops: concurrent connections overall
// and per client address, and the rate of new connections per address. Pure
// (time is passed in) and thread-safe (one mutex; each call is a few map
// operations), so the limits hold across loops whatever SO_REUSEPORT's hashing does.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cidr.h"

namespace wsmtp::listener {

// The key every limit below counts under: an IPv4 address as itself, an IPv6
// address as its /ipv6_prefix network ("2001:db8:1:2::/64"). One IPv6 host is
// usually given a whole /64, so keying by the full address would let it open
// max_connections_per_client from each of 2^64 addresses. ipv6_prefix: 0 to 128.
std::string limit_key(const IpAddress& client, int ipv6_prefix);

class ClientLimits {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Admit { ok, too_many_connections, rate_exceeded };

  struct Limits {
    int max_connections = 1000;
    int max_per_client = 20;
    int max_rate_per_minute = 60;  // 0: unlimited
  };

  // `client` is a limit_key(). Counts the connection if admitted; every admitted one needs a release().
  // An exempt client (limit_exceptions: a local application, a trusted network)
  // is held to max_connections only, so one sender cannot take every slot, but
  // the per-address count and rate do not apply to it.
  Admit admit(const std::string& client, Clock::time_point now, const Limits& limits, bool exempt = false);
  void release(const std::string& client);

  // Failed AUTH attempts per address across connections (a password guesser
  // reconnects after each session's max_auth_failures): counted in a window
  // that starts at the first failure and lasts `window`; from max_failures on,
  // the address may not try again until the window ends. max_failures 0: off.
  void note_auth_failure(const std::string& client, Clock::time_point now, std::chrono::seconds window);
  bool auth_blocked(const std::string& client, Clock::time_point now, int max_failures) const;
  int open_connections() const;

 private:
  struct PerClient {
    int open = 0;
    Clock::time_point window_start{};
    int in_window = 0;
    int auth_failures = 0;
    Clock::time_point auth_until{};  // end of the AUTH failure window
  };
  void forget_idle(Clock::time_point now);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, PerClient> clients_;
  int open_ = 0;
  Clock::time_point last_sweep_{};
};

}  // namespace wsmtp::listener
