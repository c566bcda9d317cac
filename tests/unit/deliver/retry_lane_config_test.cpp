// [deliver] retry_share_percent: the retry lane's share of each claim, rounded
// up to whole messages, so the lane is never empty and never the whole batch
// unless asked.
#include <catch2/catch.hpp>

#include "config/config_file.h"
#include "deliver/config.h"

using namespace wsmtp::deliver;

namespace {
DeliverConfig parse(const std::string& text) {
  return read_deliver_config(wsmtp::common::ConfigFile::parse("[deliver]\nhostname = a.b\n" + text, "t.conf"));
}
}  // namespace

TEST_CASE("[deliver] retry_share_percent sizes the retry lane of a claim") {
  CHECK(parse("").retry_share_percent == 20);
  CHECK(retry_lane_size(parse("")) == 4);  // 20 % of batch_size 20
  CHECK(retry_lane_size(parse("batch_size = 3\n")) == 1);
  CHECK(retry_lane_size(parse("batch_size = 1\n")) == 1);
  CHECK(retry_lane_size(parse("batch_size = 50\nretry_share_percent = 100\n")) == 50);
  CHECK(retry_lane_size(parse("batch_size = 10\nretry_share_percent = 35\n")) == 4);
  CHECK_THROWS_WITH(parse("retry_share_percent = 0\n"), Catch::Contains("retry_share_percent"));
  CHECK_THROWS_WITH(parse("retry_share_percent = 101\n"), Catch::Contains("retry_share_percent"));
}
