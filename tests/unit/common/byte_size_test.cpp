// The one size syntax (common/byte_size.h), as parse_byte_size and the
// configuration file's get_size read it.
#include "byte_size.h"

#include <catch2/catch.hpp>

#include "config/config_file.h"

using namespace wsmtp::common;

namespace {

constexpr std::uint64_t kKi = 1024;

std::optional<std::uint64_t> via_config(const std::string& value) {
  auto f = ConfigFile::parse("[x]\ns = " + value + "\n", "t.conf");
  SectionReader r(f, "x");
  try {
    return r.get_size("s", 7, 0, ~0ull);
  } catch (const ConfigError&) {
    return std::nullopt;
  }
}

}  // namespace

TEST_CASE("sizes: units in either case, binary multiples") {
  struct Case {
    const char* text;
    std::optional<std::uint64_t> bytes;
  };
  const Case cases[] = {
      {"100", 100},
      {"0", 0},
      {"512k", 512 * kKi},
      {"512K", 512 * kKi},
      {"512KiB", 512 * kKi},
      {"50m", 50 * kKi * kKi},
      {"50M", 50 * kKi * kKi},
      {"50mb", 50 * kKi * kKi},
      {"1G", kKi * kKi * kKi},
      {"1g", kKi * kKi * kKi},
      {"2GiB", 2 * kKi * kKi * kKi},
      {"3T", 3 * kKi * kKi * kKi * kKi},
      {"100b", 100},
      {"9223372036854775807", kMaxByteSize},
      {"", std::nullopt},
      {"-1", std::nullopt},
      {"+1", std::nullopt},
      {"5x", std::nullopt},
      {"M", std::nullopt},
      {"1.5M", std::nullopt},
      {"50 M", std::nullopt},
      {"50MM", std::nullopt},
      {"9223372036854775808", std::nullopt},
      {"18446744073709551616", std::nullopt},
      {"8388608T", std::nullopt},
      {"8388607T", 8388607 * (kKi * kKi * kKi * kKi)},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK(parse_byte_size(c.text) == c.bytes);
    if (*c.text) CHECK(via_config(c.text) == c.bytes);
  }
}
