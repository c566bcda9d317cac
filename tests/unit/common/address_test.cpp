#include "address.h"

#include <catch2/catch.hpp>

using namespace wsmtp::common;

TEST_CASE("parse_path accepts RFC 5321 paths") {
  struct Case {
    const char* text;
    const char* local;
    const char* domain;
    const char* params;
  };
  const Case cases[] = {
      {"<user@example.org>", "user", "example.org", ""},
      {"<User.Name+tag@Sub.Example.ORG> SIZE=100", "User.Name+tag", "Sub.Example.ORG", "SIZE=100"},
      {"<\"john doe\"@example.org>", "\"john doe\"", "example.org", ""},
      {"<\"a\\\"b\"@example.org>", "\"a\\\"b\"", "example.org", ""},
      {"<user@[192.0.2.1]>", "user", "[192.0.2.1]", ""},
      {"<user@[IPv6:2001:db8::1]>", "user", "[IPv6:2001:db8::1]", ""},
      {"<@relay.example,@other.example:user@example.org>", "user", "example.org", ""},
      {"<a@b>  BODY=8BITMIME SIZE=5", "a", "b", "BODY=8BITMIME SIZE=5"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto p = parse_path(c.text, false, false);
    REQUIRE(p.error == PathError::none);
    CHECK_FALSE(p.is_null);
    CHECK(p.address.local == c.local);
    CHECK(p.address.domain == c.domain);
    CHECK(p.params == c.params);
  }
}

TEST_CASE("parse_path rejects malformed paths") {
  const char* bad[] = {
      "user@example.org",       // no brackets
      "<user@example.org",      // unterminated
      "<user>",                 // no domain
      "<@example.org>",         // no local part
      "<user@-bad.example>",    // label starts with hyphen
      "<user@bad-.example>",    // label ends with hyphen
      "<user@exa mple.org>",    // space
      "<us er@example.org>",    // space in local part
      "<user..x@example.org>",  // empty atom
      "<user@example.org>x",    // junk after '>'
      "<user@[300.1.1.1]>",     // bad IPv4 literal
      "<user@[IPv6:zz::1]>",    // bad IPv6 literal
      "<\"unterminated@example.org>",
      "<>",                  // null not allowed here
      "<usér@example.org>",  // 8-bit without SMTPUTF8
  };
  for (const char* text : bad) {
    INFO(text);
    CHECK(parse_path(text, false, false).error != PathError::none);
  }
}

TEST_CASE("the null sender and SMTPUTF8") {
  auto p = parse_path("<>", true, false);
  CHECK(p.error == PathError::none);
  CHECK(p.is_null);
  auto u = parse_path("<usér@exämple.org>", false, true);
  CHECK(u.error == PathError::none);
  CHECK(u.address.local == "usér");
}

TEST_CASE("size limits of RFC 5321 section 4.5.3.1") {
  std::string local(64, 'a');
  CHECK(parse_path("<" + local + "@example.org>", false, false).error == PathError::none);
  CHECK(parse_path("<" + local + "a@example.org>", false, false).error == PathError::too_long);
  std::string domain;
  for (int i = 0; i < 50; ++i) domain += "abcd.";
  domain += "org";  // 253 characters
  auto p = parse_path("<" + local + "@" + domain + ">", false, false);
  CHECK(p.error == PathError::too_long);  // path > 256
}

TEST_CASE("lookup keys are lower-case and unquote plain local parts") {
  CHECK(parse_mailbox("John.Doe@Example.ORG")->lookup_key() == "john.doe@example.org");
  CHECK(parse_mailbox("\"john\"@example.org")->lookup_key() == "john@example.org");
  CHECK(parse_mailbox("\"john doe\"@example.org")->lookup_key() == "\"john doe\"@example.org");
  CHECK_FALSE(parse_mailbox("not an address"));
  CHECK(is_valid_domain("mail.example.org"));
  CHECK_FALSE(is_valid_domain("mail..example.org"));
}

TEST_CASE("postmaster lookup keys (RFC 5321 section 4.5.1)") {
  CHECK(is_postmaster_key("postmaster"));
  CHECK(is_postmaster_key("postmaster@example.org"));
  CHECK(is_postmaster_key(parse_mailbox("PostMaster@Example.ORG")->lookup_key()));
  CHECK_FALSE(is_postmaster_key("postmaster@"));
  CHECK_FALSE(is_postmaster_key("postmasters@example.org"));
  CHECK_FALSE(is_postmaster_key("postmaster+x@example.org"));
  CHECK_FALSE(is_postmaster_key("x-postmaster@example.org"));
  CHECK_FALSE(is_postmaster_key("postmast"));
}
