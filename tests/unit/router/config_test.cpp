// [router] keys that are checked beyond their type.
#include <catch2/catch.hpp>

#include "router/config.h"

using namespace wsmtp;

namespace {
router::RouterConfig parse(const std::string& text) {
  return router::read_router_config(common::ConfigFile::parse(text, "test.conf"));
}
}  // namespace

TEST_CASE("[router] postmaster: unset by default, a full address, stored as a lookup key") {
  CHECK(parse("[router]\nhostname = mx.example.org\n").postmaster.empty());
  CHECK(parse("[router]\nhostname = mx.example.org\npostmaster = Admin@Example.ORG\n").postmaster ==
        "admin@example.org");
  for (const auto* bad : {"postmaster", "admin@", "a b@example.org"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse(std::string("[router]\nhostname = mx.example.org\npostmaster = ") + bad + "\n"),
                      Catch::Contains("test.conf:3: [router] postmaster") &&
                          Catch::Contains("expected a mail address such as hostmaster@example.org"));
  }
}
