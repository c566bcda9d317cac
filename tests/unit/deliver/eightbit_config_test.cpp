// [deliver] lmtp_eightbit: convert by default, bounce or send on request, and a
// clear error naming the key and the value for anything else; the policy names
// shared with relay pools' eightbit_policy column.
#include <catch2/catch.hpp>

#include "config/config_file.h"
#include "deliver/config.h"

using namespace wsmtp::deliver;

namespace {
DeliverConfig parse(const std::string& text) {
  return read_deliver_config(wsmtp::common::ConfigFile::parse("[deliver]\nhostname = a.b\n" + text, "t.conf"));
}
}  // namespace

TEST_CASE("[deliver] lmtp_eightbit: convert by default, bounce or send, nothing else") {
  CHECK(parse("").lmtp_eightbit == EightBitPolicy::convert);
  CHECK(parse("lmtp_eightbit = convert\n").lmtp_eightbit == EightBitPolicy::convert);
  CHECK(parse("lmtp_eightbit = bounce\n").lmtp_eightbit == EightBitPolicy::bounce);
  CHECK(parse("lmtp_eightbit = send\n").lmtp_eightbit == EightBitPolicy::send);
  CHECK_THROWS_WITH(parse("lmtp_eightbit = mangle\n"),
                    Catch::Contains("lmtp_eightbit") && Catch::Contains("'mangle'"));
  CHECK_THROWS_WITH(parse("lmtp_eightbit = Convert\n"), Catch::Contains("lmtp_eightbit"));
}

TEST_CASE("8-bit policy names are exactly convert, bounce and send") {
  CHECK(eightbit_policy_named("convert") == EightBitPolicy::convert);
  CHECK(eightbit_policy_named("bounce") == EightBitPolicy::bounce);
  CHECK(eightbit_policy_named("send") == EightBitPolicy::send);
  CHECK_FALSE(eightbit_policy_named(""));
  CHECK_FALSE(eightbit_policy_named("7bit"));
}
