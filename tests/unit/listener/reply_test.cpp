#include "smtp/reply.h"
#include "listener/replies.h"

#include <catch2/catch.hpp>

using namespace wsmtp::common::smtp;

TEST_CASE("replies render with enhanced codes") {
  CHECK(replies::unknown_user().wire() == "550 5.1.1 Recipient address rejected: User unknown\r\n");
  CHECK(replies::greeting("mx.example").wire() == "220 mx.example ESMTP WSMTP\r\n");
  auto ehlo = replies::ehlo("mx.example", {"PIPELINING", "8BITMIME"});
  CHECK(ehlo.wire() == "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
}

TEST_CASE("reply classes") {
  CHECK(replies::queued(7).is_positive());
  CHECK(replies::queued(4711).wire() == "250 2.0.0 Ok: queued as 4711\r\n");
  CHECK(replies::try_again_later().is_transient());
  CHECK(replies::relay_denied().is_permanent());
  CHECK(replies::too_many_recipients(100).code == 452);
}

TEST_CASE("parse_reply reads single and multi-line replies") {
  auto r = parse_reply({"250-mx.example", "250-SIZE 1000", "250 2.0.0 PIPELINING"});
  REQUIRE(r);
  CHECK(r->code == 250);
  CHECK(r->text == "mx.example\nSIZE 1000\nPIPELINING");
  auto e = parse_reply({"451 4.3.0 try later"});
  REQUIRE(e);
  CHECK(e->status == EnhancedCode{4, 3, 0});
  CHECK(e->text == "try later");
  CHECK(e->is_transient());
  CHECK_FALSE(parse_reply({"25"}));
  CHECK_FALSE(parse_reply({"250-a", "251 b"}));
  CHECK_FALSE(parse_reply({"250 a", "250 b"}));
  CHECK_FALSE(parse_reply({"abc hello"}));
  CHECK_FALSE(parse_reply({"999 nope"}));
}

TEST_CASE("an enhanced code has digits only: a sign makes it text") {
  auto r = parse_reply({"550-5.-31.1 first", "550 5.1.1 second"});
  REQUIRE(r);
  CHECK_FALSE(r->status.present());
  CHECK(r->text == "5.-31.1 first\nsecond");
  auto d = parse_reply({"550 5.1.-1 x"});
  REQUIRE(d);
  CHECK_FALSE(d->status.present());
  CHECK(d->text == "5.1.-1 x");
}
