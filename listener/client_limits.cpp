// The rate is counted in fixed one-minute windows per address: cheap, and at
// worst lets a client make twice the rate across a window boundary, which is
// fine for a limit meant to stop floods, not to meter.
#include "client_limits.h"

namespace wsmtp::listener {

namespace {
constexpr auto kWindow = std::chrono::minutes(1);
}

std::string limit_key(const IpAddress& client, int ipv6_prefix) {
  if (client.family == IpAddress::Family::v4) return client.str();
  Cidr network{client, ipv6_prefix};
  for (int i = ipv6_prefix; i < 128; ++i) network.network.bytes[i / 8] &= static_cast<std::uint8_t>(~(0x80 >> (i % 8)));
  return network.str();
}

ClientLimits::Admit ClientLimits::admit(const std::string& client, Clock::time_point now, const Limits& limits,
                                        bool exempt) {
  std::lock_guard lock(mutex_);
  forget_idle(now);
  if (exempt) {
    if (open_ >= limits.max_connections) return Admit::too_many_connections;
    // Counted per address all the same, so release() stays symmetric.
    ++clients_[client].open;
    ++open_;
    return Admit::ok;
  }
  auto& c = clients_[client];
  if (now - c.window_start >= kWindow) {
    c.window_start = now;
    c.in_window = 0;
  }
  // Refused attempts count towards the rate too: hammering does not help.
  ++c.in_window;
  if (open_ >= limits.max_connections || c.open >= limits.max_per_client) return Admit::too_many_connections;
  if (limits.max_rate_per_minute > 0 && c.in_window > limits.max_rate_per_minute) return Admit::rate_exceeded;
  ++c.open;
  ++open_;
  return Admit::ok;
}

void ClientLimits::release(const std::string& client) {
  std::lock_guard lock(mutex_);
  auto it = clients_.find(client);
  if (it == clients_.end() || it->second.open == 0) return;
  --it->second.open;
  --open_;
}

void ClientLimits::note_auth_failure(const std::string& client, Clock::time_point now, std::chrono::seconds window) {
  std::lock_guard lock(mutex_);
  auto& c = clients_[client];
  if (now >= c.auth_until) {
    c.auth_failures = 0;
    c.auth_until = now + window;
  }
  ++c.auth_failures;
}

bool ClientLimits::auth_blocked(const std::string& client, Clock::time_point now, int max_failures) const {
  if (max_failures <= 0) return false;
  std::lock_guard lock(mutex_);
  auto it = clients_.find(client);
  return it != clients_.end() && now < it->second.auth_until && it->second.auth_failures >= max_failures;
}

int ClientLimits::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

// Addresses with no open connection and expired windows carry no information:
// dropping them keeps the map as small as the set of recent clients.
void ClientLimits::forget_idle(Clock::time_point now) {
  if (now - last_sweep_ < kWindow) return;
  last_sweep_ = now;
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->second.open == 0 && now - it->second.window_start >= kWindow && now >= it->second.auth_until)
      it = clients_.erase(it);
    else
      ++it;
  }
}

}  // namespace wsmtp::listener
