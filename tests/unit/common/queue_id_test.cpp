#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "queue_id.h"

namespace wsmtp::common {

TEST_CASE("a queue id is formatted in one way and parsed back", "[queue_id]") {
  for (std::int64_t id : {std::int64_t{1}, std::int64_t{42}, std::int64_t{9007199254740993}, INT64_MAX}) {
    auto text = format_queue_id(id);
    CHECK(parse_queue_id(text) == id);
    CHECK(fmt::format("msg={}", qid(id)) == "msg=" + text);
  }
  CHECK(format_queue_id(4711) == "4711");
}

TEST_CASE("anything not written by format_queue_id is no queue id", "[queue_id]") {
  for (const char* text : {"", "0", "-1", "+1", " 1", "1 ", "1S0", "6S0", "0x10", "12a", "9223372036854775808", "1.0"})
    CHECK_FALSE(parse_queue_id(text));
}

}  // namespace wsmtp::common
