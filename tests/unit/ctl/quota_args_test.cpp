// wsmtpctl's quota arguments read sizes exactly as the configuration file does
// (common/byte_size.h), plus "none" and "a quota is positive".
#include <catch2/catch.hpp>

#include "byte_size.h"
#include "config/config_file.h"
#include "ctl/context.h"
#include "ctl/quota_args.h"

using namespace wsmtp::ctl;

namespace {

// What the configuration file makes of the same text, nullopt if refused.
std::optional<std::int64_t> via_config(const std::string& value) {
  auto f = wsmtp::common::ConfigFile::parse("[x]\ns = " + value + "\n", "t.conf");
  wsmtp::common::SectionReader r(f, "x");
  try {
    return static_cast<std::int64_t>(r.get_size("s", 0, 1, wsmtp::common::kMaxByteSize));
  } catch (const wsmtp::common::ConfigError&) {
    return std::nullopt;
  }
}

std::optional<std::int64_t> via_ctl(const std::string& value) {
  try {
    return parse_quota_bytes(value);
  } catch (const CommandError&) {
    return std::nullopt;
  }
}

}  // namespace

TEST_CASE("a quota size means the same in wsmtpctl and in the configuration file") {
  constexpr std::int64_t kKi = 1024;
  struct Case {
    const char* text;
    std::optional<std::int64_t> bytes;
  };
  const Case cases[] = {
      {"50m", 50 * kKi * kKi},
      {"50M", 50 * kKi * kKi},
      {"512k", 512 * kKi},
      {"1G", kKi * kKi * kKi},
      {"100", 100},
      {"2GiB", 2 * kKi * kKi * kKi},
      {"-1", std::nullopt},
      {"5x", std::nullopt},
      {"0", std::nullopt},
      {"99999999999999999999", std::nullopt},
      {"8388608T", std::nullopt},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK(via_ctl(c.text) == c.bytes);
    CHECK(via_config(c.text) == c.bytes);
  }
}

TEST_CASE("quota arguments: none lifts the limit; refusals say why") {
  CHECK_FALSE(parse_quota_bytes("none").has_value());
  CHECK_FALSE(parse_quota_messages("none").has_value());
  CHECK(parse_quota_messages("1000") == 1000);
  CHECK_THROWS_WITH(parse_quota_bytes("5x"), Catch::Contains("not a size"));
  CHECK_THROWS_WITH(parse_quota_bytes("0"), Catch::Contains("positive"));
  CHECK_THROWS_AS(parse_quota_messages("0"), CommandError);
  CHECK_THROWS_AS(parse_quota_messages("1k"), CommandError);
}
