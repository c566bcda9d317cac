// Where new messages go: by weight among the shards in rotation (reachable,
// weight > 0, not full unless all are), none when no shard can take mail, and
// a shard back in rotation gets its share again.
#include "placement.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <optional>

#include "queue_id.h"

namespace wsmtp::listener {
namespace {

Placement group(bool track = true) {
  return Placement({{.name = "q1", .id = 1, .weight = 1},
                    {.name = "q2", .id = 2, .weight = 3},
                    {.name = "drain", .id = 3, .weight = 0}},
                   track);
}

// Every n-th of the 2^32 draws, evenly spread: each shard's count is its exact share.
std::map<std::size_t, int> spread(const Placement& p, int n = 4000) {
  std::map<std::size_t, int> counts;
  const auto count = static_cast<std::uint64_t>(n);
  for (std::uint64_t i = 0; i < count; ++i) {
    // The i-th n-th of the range, rounded up.
    auto shard = p.pick(static_cast<std::uint32_t>(((i << 32) + count - 1) / count));
    counts[shard ? *shard : 99]++;
  }
  return counts;
}

}  // namespace

TEST_CASE("draws map to shards in proportion to their weights; weight 0 gets nothing", "[placement]") {
  auto p = group();
  auto counts = spread(p);
  CHECK(counts[0] == 1000);
  CHECK(counts[1] == 3000);
  CHECK(counts.count(2) == 0);
  CHECK(counts.count(99) == 0);
  CHECK(p.pick(0) == 0u);
  CHECK(p.pick(0xffffffffu) == 1u);
}

TEST_CASE("the thread's own draws follow the weights too", "[placement]") {
  auto p = group();
  std::map<std::size_t, int> counts;
  for (int i = 0; i < 20000; ++i) counts[p.pick().value()]++;
  CHECK(counts.count(2) == 0);
  CHECK(counts[1] > 14000);  // 15000 expected; 3 standard deviations are ~180
  CHECK(counts[1] < 16000);
}

TEST_CASE("a shard out of rotation is never picked; all out: none; rejoined: its share again", "[placement]") {
  auto p = group();
  CHECK(p.set_reachable(1, false));
  CHECK_FALSE(p.set_reachable(1, false));  // no change, nothing to log
  CHECK_FALSE(p.in_rotation(1));
  auto counts = spread(p);
  CHECK(counts[0] == 4000);
  CHECK(p.set_reachable(0, false));
  CHECK(spread(p)[99] == 4000);
  CHECK_FALSE(p.pick(12345));
  CHECK(p.set_reachable(1, true));
  CHECK(spread(p)[1] == 4000);
  CHECK(p.set_reachable(0, true));
  counts = spread(p);
  CHECK(counts[0] == 1000);
  CHECK(counts[1] == 3000);
}

TEST_CASE("a full shard leaves the rotation; once all are full, MAIL is refused and mail still goes somewhere",
          "[placement]") {
  auto p = group();
  CHECK(p.set_full(0, true));
  CHECK_FALSE(p.all_full_flag().load());
  CHECK(spread(p)[1] == 4000);
  // The drained shard's fullness does not matter: it takes no new mail anyway.
  p.set_full(2, false);
  CHECK(p.set_full(1, true));
  CHECK(p.all_full_flag().load());
  // Sessions past MAIL still store their message, as with one database.
  auto counts = spread(p);
  CHECK(counts[0] == 1000);
  CHECK(counts[1] == 3000);
  p.set_reachable(1, false);
  CHECK(spread(p)[0] == 4000);
  CHECK(p.set_full(0, false));
  CHECK_FALSE(p.all_full_flag().load());
}

TEST_CASE("a lone shard has no health state: it is always tried", "[placement]") {
  Placement p({{.name = "default", .id = 0, .weight = 1}}, false);
  CHECK_FALSE(p.set_reachable(0, false));
  CHECK(p.reachable(0));
  CHECK(p.pick() == 0u);
  CHECK(p.pick(0xffffffffu) == 0u);
}

TEST_CASE("a queue id names its shard", "[placement]") {
  auto p = group();
  CHECK(p.index_of(2) == 1u);
  CHECK_FALSE(p.index_of(7));
  CHECK(p.name_of_message(2 * common::kShardIdSpan + 17) == "q2");
  CHECK(p.name_of_message(9 * common::kShardIdSpan + 1).empty());
}

}  // namespace wsmtp::listener
