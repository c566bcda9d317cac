// What the SMTP/LMTP client reads from EHLO/LHLO and puts on its MAIL command.
#include "smtp/client.h"

#include <catch2/catch.hpp>

using namespace wsmtp::common::smtp;

namespace {
ServerExtensions announced(const std::vector<std::string>& lines) {
  std::vector<std::string> wire;
  for (std::size_t i = 0; i < lines.size(); ++i) wire.push_back("250" + std::string(i + 1 < lines.size() ? "-" : " ") + lines[i]);
  auto reply = parse_reply(wire);
  REQUIRE(reply);
  return parse_ehlo(*reply);
}
}  // namespace

TEST_CASE("SIZE is recognised with a limit, without one, and as 0") {
  auto limited = announced({"relay.example", "PIPELINING", "SIZE 10240000", "8BITMIME"});
  CHECK(limited.size);
  CHECK(limited.size_limit == 10240000u);
  CHECK(limited.pipelining);
  CHECK(limited.eightbitmime);
  auto bare = announced({"lmtp.example", "8BITMIME", "SIZE"});  // Dovecot's LMTP, smtp-sink -L
  CHECK(bare.size);
  CHECK(bare.size_limit == 0u);
  CHECK(announced({"x.example", "size 0"}).size);
  auto none = announced({"x.example", "SIZEX 5", "PIPELINING"});
  CHECK_FALSE(none.size);
}

TEST_CASE("MAIL carries SIZE= whenever the server takes SIZE, BODY=8BITMIME when declared and taken") {
  Envelope e{"a@example.org", {"b@example.test"}, 4096, true};
  auto with = announced({"x.example", "SIZE", "8BITMIME"});
  CHECK(mail_command(e, with) == "MAIL FROM:<a@example.org> SIZE=4096 BODY=8BITMIME");
  auto without = announced({"x.example"});
  CHECK(mail_command(e, without) == "MAIL FROM:<a@example.org>");
  e.from.clear();
  e.declare_8bit = false;
  CHECK(mail_command(e, announced({"x.example", "SIZE 1000"})) == "MAIL FROM:<> SIZE=4096");
}
