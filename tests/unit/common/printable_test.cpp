// printable(): the one escaping of untrusted text for logs, terminals and replies.
#include "printable.h"

#include <catch2/catch.hpp>

using wsmtp::common::printable;

TEST_CASE("printable ASCII and valid UTF-8 pass unchanged") {
  CHECK(printable("") == "");
  CHECK(printable("ann@example.org Re: lunch?") == "ann@example.org Re: lunch?");
  CHECK(printable("Grüße, 日本, \xf0\x9f\x98\x80") == "Grüße, 日本, \xf0\x9f\x98\x80");
  CHECK(printable("\xc2\xa0") == "\xc2\xa0");  // U+00A0, the first printable code point after C1
}

TEST_CASE("control characters are written as \\xNN") {
  const std::string forged = "bob\n2026-12-05T00:00:00Z wsmtp[1] info: msg=123 delivered";
  CHECK(printable(forged) == "bob\\x0a2026-12-05T00:00:00Z wsmtp[1] info: msg=123 delivered");
  CHECK(printable("\x1b[2J\x08\x7f\r\t") == "\\x1b[2J\\x08\\x7f\\x0d\\x09");
  CHECK(printable(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(printable("\xc2\x9b"
                  "31m") == "\\xc2\\x9b31m");  // U+009B, CSI in C1 form
}

TEST_CASE("invalid UTF-8 bytes are written as \\xNN, and a backslash cannot forge an escape") {
  CHECK(printable("\x9b"
                  "2J") == "\\x9b2J");  // a lone continuation byte
  CHECK(printable("\xff\xfe") == "\\xff\\xfe");
  CHECK(printable("\xc3") == "\\xc3");                             // truncated sequence
  CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");                    // overlong '/'
  CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");           // a surrogate
  CHECK(printable("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  CHECK(printable("\\x1b") == "\\\\x1b");
}

TEST_CASE("the result never holds a control byte or invalid UTF-8") {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  const auto out = printable(all);
  for (unsigned char c : out) {
    CHECK(c >= 0x20);
    CHECK(c != 0x7f);
    CHECK(c < 0x80);  // every high byte alone is invalid UTF-8
  }
}
