// IP addresses and CIDR networks as plain values, for the relay decision
// (trusted_networks) and per-client connection accounting. Pure: no sockets are
// opened, only inet_pton/inet_ntop; knows nothing of configuration or SMTP.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wsmtp::listener {

struct IpAddress {
  enum class Family : std::uint8_t { v4, v6 };
  Family family = Family::v4;
  std::array<std::uint8_t, 16> bytes{};  // network order; only the first 4 used for v4

  // Parses a textual IPv4 or IPv6 address. An IPv4-mapped IPv6 address
  // (::ffff:192.0.2.1, what a dual-stack socket reports for IPv4 clients) becomes
  // the IPv4 address, so one trusted_networks entry covers both socket kinds.
  static std::optional<IpAddress> parse(std::string_view text);
  std::string str() const;
  std::size_t size() const { return family == Family::v4 ? 4 : 16; }
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct Cidr {
  IpAddress network;  // host bits cleared
  int prefix = 0;

  // "192.0.2.0/24", "2001:db8::/32", or a bare address (a /32 or /128).
  // Returns nullopt for bad syntax, a prefix out of range, or host bits set
  // ("10.0.0.1/8" is almost always a typo for a different network).
  static std::optional<Cidr> parse(std::string_view text);
  bool contains(const IpAddress& address) const;
  std::string str() const;
};

}  // namespace wsmtp::listener
