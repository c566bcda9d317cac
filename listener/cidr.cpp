// Address parsing goes through inet_pton so we accept exactly what the C library
// accepts, no more (no "010.1.1.1" octal surprises: inet_pton rejects them).
#include "cidr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace wsmtp::listener {
namespace {

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  std::string s(text);
  IpAddress out;
  if (inet_pton(AF_INET, s.c_str(), out.bytes.data()) == 1) {
    out.family = Family::v4;
    return out;
  }
  if (inet_pton(AF_INET6, s.c_str(), out.bytes.data()) != 1) return std::nullopt;
  out.family = Family::v6;
  if (std::memcmp(out.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0) {
    IpAddress v4;
    std::memcpy(v4.bytes.data(), out.bytes.data() + 12, 4);
    return v4;
  }
  return out;
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto address = IpAddress::parse(text.substr(0, slash));
  // A mapped v6 network would silently turn into a v4 one with a wrong prefix.
  if (!address || (address->family == IpAddress::Family::v4 && text.find(':') != std::string_view::npos))
    return std::nullopt;
  int bits = static_cast<int>(address->size()) * 8;
  int prefix = bits;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto r = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size() || prefix < 0 || prefix > bits)
      return std::nullopt;
  }
  Cidr cidr{*address, prefix};
  for (int i = prefix; i < bits; ++i)
    if (address->bytes[i / 8] & (0x80 >> (i % 8))) return std::nullopt;
  return cidr;
}

bool Cidr::contains(const IpAddress& address) const {
  if (address.family != network.family) return false;
  int full = prefix / 8;
  if (std::memcmp(address.bytes.data(), network.bytes.data(), full) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (address.bytes[full] & mask) == network.bytes[full];
}

std::string Cidr::str() const { return fmt::format("{}/{}", network.str(), prefix); }

}  // namespace wsmtp::listener
