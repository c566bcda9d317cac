#include "mail/headers.h"

#include <random>

#include <catch2/catch.hpp>

using namespace wsmtp::common::mail;

TEST_CASE("header fields: folding, case, encoded words, the end of the section") {
  auto h = HeaderBlock::parse(
      "Received: from a\r\n\tby b\r\n"
      "Subject: =?utf-8?B?w6k=?=\r\n   continued\r\n"
      "X-Empty:\r\n"
      "Obsolete : spaced name\r\n"
      "\r\n"
      "Body-Looking: not a header\r\n");
  CHECK(h.complete());
  REQUIRE(h.fields().size() == 4);
  CHECK(h.first("received") == std::optional<std::string_view>("from a\tby b"));
  CHECK(h.first("SUBJECT") == std::optional<std::string_view>("=?utf-8?B?w6k=?=   continued"));
  CHECK(h.first("X-Empty") == std::optional<std::string_view>(""));
  CHECK(h.first("Obsolete") == std::optional<std::string_view>("spaced name"));
  CHECK_FALSE(h.first("Body-Looking"));
  CHECK(h.has_prefix("x-"));
  CHECK_FALSE(h.has_prefix("List-"));
}

TEST_CASE("malformed header sections are tolerated") {
  SECTION("bare LF, garbage lines, stray continuation, NUL") {
    auto h =
        HeaderBlock::parse(std::string("  stray continuation\nFrom a@b Sat Jan "
                                       " 3 01:05:34 1996\nno colon here\n"
                                       "A: 1\n\tfolded\nB: x\0y\n\n",
                                       90));
    CHECK(h.complete());
    REQUIRE(h.fields().size() == 2);
    CHECK(h.first("A") == std::optional<std::string_view>("1\tfolded"));
    CHECK(h.first("B")->size() == 3);
  }
  SECTION("no end of the section, last line cut") {
    auto h = HeaderBlock::parse("A: 1\r\nB: 2");
    CHECK_FALSE(h.complete());
    CHECK(h.fields().size() == 1);
  }
  SECTION("limits bound the work") {
    std::string big;
    for (int i = 0; i < 100000; ++i) big += "X: y\r\n";
    auto h = HeaderBlock::parse(big, {.max_bytes = 64 * 1024, .max_fields = 500});
    CHECK(h.fields().size() == 500);
    std::string folded = "S: a\r\n";
    for (int i = 0; i < 100000; ++i) folded += " b\r\n";
    auto f = HeaderBlock::parse(folded, {.max_bytes = 4096, .max_fields = 10});
    REQUIRE(f.fields().size() == 1);
    CHECK(f.fields()[0].value.size() < 4096);
  }
  SECTION("random bytes never crash") {
    std::mt19937 rng(42);
    const std::string alphabet = "ab:\r\n \t\0@<>";
    for (int round = 0; round < 500; ++round) {
      std::string s;
      for (int i = 0; i < 300; ++i) s += alphabet[rng() % alphabet.size()];
      auto h = HeaderBlock::parse(s, {.max_bytes = 200, .max_fields = 20});
      CHECK(h.fields().size() <= 20);
    }
  }
}

TEST_CASE("collecting a header section from chunks") {
  HeaderCollector c({.max_bytes = 1024, .max_fields = 100});
  CHECK_FALSE(c.feed("Subject: a\r"));
  CHECK_FALSE(c.feed("\nTo: b@c\r\n\r"));
  CHECK(c.feed("\nbody body"));
  auto h = c.block();
  CHECK(h.complete());
  CHECK(h.fields().size() == 2);

  HeaderCollector endless({.max_bytes = 100, .max_fields = 100});
  bool done = false;
  for (int i = 0; i < 1000 && !done; ++i) done = endless.feed("X: yyyyyyyyyyyyyy\r\n");
  CHECK(done);
  CHECK_FALSE(endless.block().complete());
  HeaderCollector headerless;
  CHECK(headerless.feed("\r\nbody"));
}

TEST_CASE("address mentions and angle tokens") {
  CHECK(mentions_address("Ann <ANN@example.org>", "ann@example.org"));
  CHECK(mentions_address("x@y, ann@example.org", "ann@example.org"));
  CHECK_FALSE(mentions_address("joann@example.org", "ann@example.org"));
  CHECK_FALSE(mentions_address("ann@example.org.evil", "ann@example.org"));
  CHECK_FALSE(mentions_address("", "ann@example.org"));
  CHECK(first_angle_token(" <a@b> <c@d>") == "<a@b>");
  CHECK(first_angle_token("<unclosed").empty());
  CHECK(trim(" \t x \r\n") == "x");
  CHECK(iequals("List-Id", "list-id"));
}
