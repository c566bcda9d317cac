// --json stays valid JSON whatever bytes the queue holds.
#include <catch2/catch.hpp>

#include "ctl/json_output.h"

using namespace wsmtp::ctl;

TEST_CASE("is_utf8 accepts well-formed UTF-8 and rejects the rest") {
  CHECK(is_utf8(""));
  CHECK(is_utf8("plain ascii"));
  CHECK(is_utf8("caf\xC3\xA9"));             // é
  CHECK(is_utf8("\xE2\x82\xAC"));            // €
  CHECK(is_utf8("\xF0\x9F\x93\xA7"));        // U+1F4E7
  CHECK_FALSE(is_utf8("caf\xE9"));           // Latin-1 é
  CHECK_FALSE(is_utf8("\xFF"));              // never in UTF-8
  CHECK_FALSE(is_utf8("\xC3"));              // cut short
  CHECK_FALSE(is_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(is_utf8("\xE0\x80\xAF"));      // overlong, three bytes
  CHECK_FALSE(is_utf8("\xED\xA0\x80"));      // UTF-16 surrogate
  CHECK_FALSE(is_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(is_utf8("\x80"));              // a continuation byte first
}

TEST_CASE("base64 follows RFC 4648 test vectors") {
  CHECK(base64("") == "");
  CHECK(base64("f") == "Zg==");
  CHECK(base64("fo") == "Zm8=");
  CHECK(base64("foo") == "Zm9v");
  CHECK(base64("foob") == "Zm9vYg==");
  CHECK(base64("fooba") == "Zm9vYmE=");
  CHECK(base64("foobar") == "Zm9vYmFy");
  CHECK(base64("\xE9\xFF") == "6f8=");
}

TEST_CASE("put_bytes keeps invalid bytes in a base64 twin and the dump stays valid") {
  Json j = Json::object();
  put_bytes(j, "headers", "Subject: caf\xE9 \xFF\r\n");
  put_bytes(j, "sender", "a@b.example");
  CHECK(j["headers_base64"] == base64("Subject: caf\xE9 \xFF\r\n"));
  CHECK_FALSE(j.contains("sender_base64"));
  auto text = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  CHECK(is_utf8(text));
  auto back = Json::parse(text);                                          // throws if the output were not JSON
  CHECK(back["headers"] == "Subject: caf\xEF\xBF\xBD \xEF\xBF\xBD\r\n");  // U+FFFD for each bad byte
  CHECK(back["sender"] == "a@b.example");
}
