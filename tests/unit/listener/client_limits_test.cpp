// Admission control: overall and per-address concurrency, and the per-address
// connection rate in one-minute windows (time is passed in: no wall clock).
#include <catch2/catch.hpp>

#include "client_limits.h"

namespace wsmtp::listener {

using Admit = ClientLimits::Admit;
using std::chrono::seconds;

TEST_CASE("concurrent connections overall and per client", "[limits]") {
  ClientLimits limits;
  ClientLimits::Limits l{.max_connections = 3, .max_per_client = 2, .max_rate_per_minute = 0};
  auto t = ClientLimits::Clock::time_point{} + seconds(1000);
  CHECK(limits.admit("a", t, l) == Admit::ok);
  CHECK(limits.admit("a", t, l) == Admit::ok);
  CHECK(limits.admit("a", t, l) == Admit::too_many_connections);
  CHECK(limits.admit("b", t, l) == Admit::ok);
  CHECK(limits.admit("c", t, l) == Admit::too_many_connections);  // 3 overall
  CHECK(limits.open_connections() == 3);
  limits.release("a");
  CHECK(limits.admit("c", t, l) == Admit::ok);
  limits.release("unknown");  // harmless
  CHECK(limits.open_connections() == 3);
}

TEST_CASE("connection rate per client, counting refused attempts", "[limits]") {
  ClientLimits limits;
  ClientLimits::Limits l{.max_connections = 100, .max_per_client = 100, .max_rate_per_minute = 3};
  auto t = ClientLimits::Clock::time_point{} + seconds(1000);
  for (int i = 0; i < 3; ++i) {
    CHECK(limits.admit("a", t, l) == Admit::ok);
    limits.release("a");
  }
  CHECK(limits.admit("a", t + seconds(10), l) == Admit::rate_exceeded);
  CHECK(limits.admit("b", t + seconds(10), l) == Admit::ok);  // others are not affected
  CHECK(limits.admit("a", t + seconds(59), l) == Admit::rate_exceeded);
  CHECK(limits.admit("a", t + seconds(61), l) == Admit::ok);  // a new window
}

TEST_CASE("failed AUTH attempts per address across connections", "[limits]") {
  ClientLimits limits;
  ClientLimits::Limits l{.max_connections = 100, .max_per_client = 100, .max_rate_per_minute = 0};
  auto t = ClientLimits::Clock::time_point{} + seconds(1000);
  CHECK_FALSE(limits.auth_blocked("a", t, 3));
  for (int i = 0; i < 3; ++i) {
    // Each attempt on a new connection, closed again: the count survives.
    REQUIRE(limits.admit("a", t, l) == Admit::ok);
    limits.note_auth_failure("a", t + seconds(i), seconds(600));
    limits.release("a");
  }
  CHECK(limits.auth_blocked("a", t + seconds(10), 3));
  CHECK_FALSE(limits.auth_blocked("b", t + seconds(10), 3));
  CHECK_FALSE(limits.auth_blocked("a", t + seconds(10), 0));  // 0: no limit
  CHECK_FALSE(limits.auth_blocked("a", t + seconds(10), 4));
  // Idle sweeps (a minute on) keep the address while its window lasts.
  REQUIRE(limits.admit("z", t + seconds(120), l) == Admit::ok);
  CHECK(limits.auth_blocked("a", t + seconds(120), 3));
  // The window is counted from the first failure.
  CHECK(limits.auth_blocked("a", t + seconds(599), 3));
  CHECK_FALSE(limits.auth_blocked("a", t + seconds(600), 3));
  limits.note_auth_failure("a", t + seconds(600), seconds(600));
  CHECK_FALSE(limits.auth_blocked("a", t + seconds(601), 3));
}

// Issue 13: a local application sending more than 60 messages a minute, or
// smtp-source with 20 sessions, was refused. Exempt clients (limit_exceptions)
// keep only the overall limit and the AUTH failure limits.
TEST_CASE("an exempt client skips the per-address count and rate, not the overall limit", "[limits]") {
  ClientLimits limits;
  ClientLimits::Limits l{.max_connections = 5, .max_per_client = 2, .max_rate_per_minute = 3};
  auto t = ClientLimits::Clock::time_point{} + seconds(1000);
  for (int i = 0; i < 100; ++i) {
    REQUIRE(limits.admit("127.0.0.1", t, l, /*exempt=*/true) == Admit::ok);
    limits.release("127.0.0.1");
  }
  for (int i = 0; i < 5; ++i) CHECK(limits.admit("127.0.0.1", t, l, true) == Admit::ok);
  CHECK(limits.admit("127.0.0.1", t, l, true) == Admit::too_many_connections);  // 5 overall
  CHECK(limits.open_connections() == 5);
  for (int i = 0; i < 5; ++i) limits.release("127.0.0.1");
  CHECK(limits.open_connections() == 0);
  // The same address without the exemption is limited as before.
  CHECK(limits.admit("127.0.0.1", t, l) == Admit::ok);
  CHECK(limits.admit("127.0.0.1", t, l) == Admit::ok);
  CHECK(limits.admit("127.0.0.1", t, l) == Admit::too_many_connections);
  // AUTH failures still count and block an exempt address.
  for (int i = 0; i < 3; ++i) limits.note_auth_failure("127.0.0.1", t, seconds(600));
  CHECK(limits.auth_blocked("127.0.0.1", t, 3));
}

// Issue 15 item 7: one IPv6 host with a /64 must not get a fresh set of slots per address.
TEST_CASE("limit keys: IPv4 by address, IPv6 by its configured prefix", "[limits]") {
  auto key = [](const char* text, int prefix) { return limit_key(*IpAddress::parse(text), prefix); };
  struct Case {
    const char* address;
    int prefix;
    const char* expected;
  };
  for (auto [address, prefix, expected] : {
           Case{"192.0.2.17", 64, "192.0.2.17"},
           Case{"::ffff:192.0.2.17", 64, "192.0.2.17"},  // a dual-stack socket's IPv4 client
           Case{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"},
           Case{"2001:db8:1:2::1", 64, "2001:db8:1:2::/64"},
           Case{"2001:db8:1:2ff:1::1", 56, "2001:db8:1:200::/56"},
           Case{"2001:db8:1:7::1", 61, "2001:db8:1::/61"},
           Case{"2001:db8:1:f::1", 61, "2001:db8:1:8::/61"},
           Case{"2001:db8:1:2::1", 128, "2001:db8:1:2::1/128"},
           Case{"2001:db8:ffff:ffff::1", 32, "2001:db8::/32"},
       }) {
    CAPTURE(address, prefix);
    CHECK(key(address, prefix) == expected);
  }
  CHECK(key("2001:db8:1:2::1", 64) == key("2001:db8:1:2:ffff::9", 64));
  CHECK(key("2001:db8:1:2::1", 64) != key("2001:db8:1:3::1", 64));
  CHECK(key("2001:db8:1:2::1", 128) != key("2001:db8:1:2::2", 128));
}

TEST_CASE("addresses of one /64 share the per-client count, rate and AUTH failures", "[limits]") {
  ClientLimits limits;
  ClientLimits::Limits l{.max_connections = 100, .max_per_client = 2, .max_rate_per_minute = 3};
  auto t = ClientLimits::Clock::time_point{} + seconds(1000);
  auto key = [](const char* text) { return limit_key(*IpAddress::parse(text), 64); };
  CHECK(limits.admit(key("2001:db8:1:2::1"), t, l) == Admit::ok);
  CHECK(limits.admit(key("2001:db8:1:2::2"), t, l) == Admit::ok);
  CHECK(limits.admit(key("2001:db8:1:2::3"), t, l) == Admit::too_many_connections);
  CHECK(limits.admit(key("2001:db8:1:3::1"), t, l) == Admit::ok);  // another /64
  limits.release(key("2001:db8:1:2::1"));
  limits.release(key("2001:db8:1:2::2"));
  // The refused attempt counted: this is the fourth from the /64 this minute.
  CHECK(limits.admit(key("2001:db8:1:2::4"), t, l) == Admit::rate_exceeded);

  for (int i = 0; i < 3; ++i) limits.note_auth_failure(key("2001:db8:1:2::10"), t, seconds(600));
  CHECK(limits.auth_blocked(key("2001:db8:1:2::20"), t, 3));
  CHECK_FALSE(limits.auth_blocked(key("2001:db8:1:3::20"), t, 3));
}

}  // namespace wsmtp::listener
