// IP address and CIDR parsing and matching.
#include <catch2/catch.hpp>

#include "cidr.h"

namespace wsmtp::listener {

TEST_CASE("CIDR parsing", "[cidr]") {
  struct Row {
    const char* text;
    const char* canonical;  // nullptr: must be rejected
  };
  auto row = GENERATE(values<Row>({
      {"192.0.2.0/24", "192.0.2.0/24"},
      {"10.1.2.3", "10.1.2.3/32"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"2001:DB8::/32", "2001:db8::/32"},
      {"::1", "::1/128"},
      {"192.0.2.1/24", nullptr},
      {"192.0.2.0/33", nullptr},
      {"192.0.2.0/", nullptr},
      {"192.0.2.0/-1", nullptr},
      {"192.0.2/24", nullptr},
      {"::ffff:192.0.2.0/120", nullptr},
      {"example.org", nullptr},
      {"", nullptr},
  }));
  INFO(row.text);
  auto cidr = Cidr::parse(row.text);
  if (row.canonical) {
    REQUIRE(cidr);
    CHECK(cidr->str() == row.canonical);
  } else {
    CHECK_FALSE(cidr);
  }
}

TEST_CASE("CIDR matching", "[cidr]") {
  auto net = *Cidr::parse("192.0.2.128/25");
  CHECK(net.contains(*IpAddress::parse("192.0.2.200")));
  CHECK_FALSE(net.contains(*IpAddress::parse("192.0.2.127")));
  CHECK(net.contains(*IpAddress::parse("::ffff:192.0.2.129")));  // a dual-stack socket's view
  CHECK_FALSE(net.contains(*IpAddress::parse("2001:db8::1")));
  auto v6 = *Cidr::parse("2001:db8:8000::/33");
  CHECK(v6.contains(*IpAddress::parse("2001:db8:8000::1")));
  CHECK_FALSE(v6.contains(*IpAddress::parse("2001:db8::1")));
  CHECK(Cidr::parse("0.0.0.0/0")->contains(*IpAddress::parse("203.0.113.9")));
}

}  // namespace wsmtp::listener
