// The one set of ASCII helpers (common/ascii.h): case folds only A-Z/a-z, UTF-8 passes through.
#include "ascii.h"

#include <catch2/catch.hpp>

using namespace wsmtp::common;

TEST_CASE("ascii: case folding touches letters only") {
  CHECK(to_lower_ascii("Bob@Example.ORG") == "bob@example.org");
  CHECK(to_upper_ascii("ehlo mx-1.example") == "EHLO MX-1.EXAMPLE");
  CHECK(to_lower_ascii("J\xC3\x96RG") == "j\xC3\x96rg");  // "JÖRG": the UTF-8 bytes stay
  CHECK(to_upper_ascii("\xC3\xA9t\xC3\xA9") == "\xC3\xA9T\xC3\xA9");
  CHECK(to_lower_ascii('Z') == 'z');
  CHECK(to_upper_ascii('@') == '@');
}

TEST_CASE("ascii: comparisons ignoring case") {
  CHECK(iequals("List-Id", "list-id"));
  CHECK_FALSE(iequals("List-Id", "list-i"));
  CHECK_FALSE(iequals("\xC3\x96", "\xC3\xB6"));  // Ö and ö are not ASCII letters
  CHECK(istarts_with("mail from:<a@b>", "MAIL FROM:"));
  CHECK(istarts_with("AUTH PLAIN", "auth "));
  CHECK_FALSE(istarts_with("TO", "TO:"));
  CHECK(istarts_with("x", ""));
}

TEST_CASE("ascii: is_ascii and trimming") {
  CHECK(is_ascii(""));
  CHECK(is_ascii("plain text\r\n\x7f"));
  CHECK_FALSE(is_ascii("caf\xC3\xA9"));
  CHECK(trim_blanks(" \t x y \t") == "x y");
  CHECK(trim_blanks("\r\nx\r\n") == "\r\nx\r\n");
  CHECK(trim(" \t x \r\n") == "x");
  CHECK(trim(" \r\n\t ").empty());
}
