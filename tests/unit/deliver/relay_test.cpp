// The outbound pieces that need no network: DATA encoding (dot-stuffing and
// line-end repair, so no bare CR/LF reaches a relay), weighted relay choice, and
// how remote replies are written into delivery details.
#include <map>

#include <catch2/catch.hpp>

#include "deliver/relay.h"
#include "deliver/dot_stuff.h"

using namespace wsmtp;
using common::smtp::DotStuffer;

namespace {
std::string stuff(const std::vector<std::string>& chunks) {
  DotStuffer s;
  std::string out;
  for (const auto& c : chunks) s.feed(c, out);
  s.finish(out);
  return out;
}
}  // namespace

TEST_CASE("dot-stuffing doubles leading dots and ends with CRLF.CRLF, across chunks") {
  CHECK(stuff({"a\r\n.b\r\n..c\r\n"}) == "a\r\n..b\r\n...c\r\n.\r\n");
  CHECK(stuff({"a\r", "\n.", "\r\n"}) == "a\r\n..\r\n.\r\n");
  CHECK(stuff({"no final newline"}) == "no final newline\r\n.\r\n");
  CHECK(stuff({""}) == ".\r\n");
}

TEST_CASE("bare LF and bare CR become CRLF, so no smuggled end of data survives") {
  CHECK(stuff({"x\n.\nMAIL FROM:<evil>\n"}) == "x\r\n..\r\nMAIL FROM:<evil>\r\n.\r\n");
  CHECK(stuff({"x\r.\r", "y"}) == "x\r\n..\r\ny\r\n.\r\n");
  CHECK(stuff({"x\r\n.\r", "\n"}) == "x\r\n..\r\n.\r\n");
  CHECK(common::smtp::has_8bit("caf\xc3\xa9"));
  CHECK_FALSE(common::smtp::has_8bit("plain\r\n"));
}

TEST_CASE("relays are chosen by weight, never down or excluded ones") {
  std::vector<common::pg::RelayHost> relays = {{"a", 25, 3, false}, {"b", 25, 1, false}, {"c", 25, 5, true}};
  std::mt19937 rng(7);
  std::map<int, int> hits;
  std::vector<bool> none(3, false);
  for (int i = 0; i < 4000; ++i) ++hits[deliver::pick_relay(relays, none, rng)];
  CHECK(hits[2] == 0);
  CHECK(hits[0] > 2 * hits[1]);  // expected 3:1
  CHECK(hits[0] < 4 * hits[1]);
  std::vector<bool> a_failed = {true, false, false};
  CHECK(deliver::pick_relay(relays, a_failed, rng) == 1);
  std::vector<bool> all = {true, true, false};
  CHECK(deliver::pick_relay(relays, all, rng) == -1);
}

TEST_CASE("remote replies become details with code, enhanced code and one-line text") {
  common::smtp::Reply r{550, {5, 1, 1}, "no such user\nreally"};
  CHECK(deliver::reply_detail(r) == "550 5.1.1 no such user really");
  CHECK(deliver::reply_detail({451, {}, "later"}) == "451 later");
}
