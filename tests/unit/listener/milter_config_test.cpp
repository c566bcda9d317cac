// [listener] milters: the list, per-milter settings in braces, and the errors.
#include <catch2/catch.hpp>

#include "milter/milter_config.h"

namespace wsmtp::listener::milter {

TEST_CASE("milter lists: inet, inet6 and unix, with Postfix 3's per-milter settings", "[milter][config]") {
  MilterSpec defaults;
  defaults.command_timeout = std::chrono::seconds(7);
  auto specs = parse_milters(
      "inet:127.0.0.1:11332, { unix:/run/opendkim/opendkim.sock, default_action = accept, command_timeout = 2s },"
      " inet:[::1]:8893",
      defaults);
  REQUIRE(specs.size() == 3);
  CHECK(specs[0].name == "inet:127.0.0.1:11332");
  CHECK(specs[0].transport == MilterSpec::Transport::inet);
  CHECK(specs[0].host == "127.0.0.1");
  CHECK(specs[0].port == 11332);
  CHECK(specs[0].default_action == DefaultAction::tempfail);
  CHECK(specs[0].command_timeout == std::chrono::seconds(7));
  CHECK(specs[1].transport == MilterSpec::Transport::unix_socket);
  CHECK(specs[1].path == "/run/opendkim/opendkim.sock");
  CHECK(specs[1].default_action == DefaultAction::accept);
  CHECK(specs[1].command_timeout == std::chrono::seconds(2));
  CHECK(specs[1].content_timeout == defaults.content_timeout);
  CHECK(specs[2].host == "::1");
  CHECK(specs[2].port == 8893);
  CHECK(parse_milters("  ", defaults).empty());
}

TEST_CASE("bad milter lists are refused with a message naming the problem", "[milter][config]") {
  MilterSpec d;
  auto fails_with = [&](const char* text, const char* words) {
    CAPTURE(text);
    REQUIRE_THROWS_AS(parse_milters(text, d), MilterConfigError);
    try {
      parse_milters(text, d);
    } catch (const MilterConfigError& e) {
      CHECK_THAT(e.what(), Catch::Contains(words));
    }
  };
  fails_with("inet:localhost:11332", "not a numeric IP address");
  fails_with("inet:127.0.0.1:0", "not a port number");
  fails_with("inet:127.0.0.1", "expected inet:ADDRESS:PORT");
  fails_with("unix:relative.sock", "absolute path");
  fails_with("tcp:1.2.3.4:5", "expected inet:ADDRESS:PORT or unix:/PATH");
  fails_with("{ inet:127.0.0.1:1, default_action = maybe }", "not one of tempfail, accept, reject, quarantine");
  fails_with("{ inet:127.0.0.1:1, colour = blue }", "unknown setting 'colour'");
  fails_with("{ inet:127.0.0.1:1, command_timeout = 0 }", "must be a duration");
  fails_with("{ inet:127.0.0.1:1", "'{' without '}'");
  fails_with("inet:127.0.0.1:1,,inet:127.0.0.1:2", "empty entry");
}

}  // namespace wsmtp::listener::milter
