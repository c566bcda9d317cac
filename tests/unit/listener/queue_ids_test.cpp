// The listener's shared reserve of queue ids: taken without the store,
// refilled once per half block, never the same id twice.
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>
#include <vector>

#include "fake_store.h"
#include "queue_ids.h"

namespace wsmtp::listener {

namespace {
const auto t0 = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
}  // namespace

TEST_CASE("the reserve asks for one refill when it runs low, and none while one is under way", "[queue_ids]") {
  test::FakeStore store;
  QueueIdReserve ids(4);
  CHECK_FALSE(ids.take());
  REQUIRE(ids.refill_due(t0));
  CHECK_FALSE(ids.refill_due(t0));  // one refill at a time
  ids.refill(store);
  CHECK(ids.size() == 4);
  CHECK(ids.take() == 42);
  CHECK(ids.take() == 43);
  CHECK_FALSE(ids.refill_due(t0));  // half a block left
  CHECK(ids.take() == 44);
  REQUIRE(ids.refill_due(t0));
  ids.refill(store);
  CHECK(ids.take() == 45);
  CHECK(ids.take() == 46);
  CHECK(store.reserved == std::vector<int>{4, 4});
}

TEST_CASE("a failed refill is asked for again after a pause, not at once", "[queue_ids]") {
  test::FakeStore store;
  QueueIdReserve ids(4);
  REQUIRE(ids.refill_due(t0));
  store.fail_reserve = true;
  CHECK_THROWS(ids.refill(store));
  CHECK_FALSE(ids.refill_due(t0 + std::chrono::milliseconds(500)));
  REQUIRE(ids.refill_due(t0 + QueueIdReserve::kRetryPause));
  store.fail_reserve = false;
  ids.refill(store);
  CHECK(ids.size() == 4);
}

TEST_CASE("a session that found the reserve empty gets one id and the rest are kept", "[queue_ids]") {
  test::FakeStore store;
  QueueIdReserve ids(4);
  REQUIRE(ids.refill_due(t0));  // a refill that never reports back (cancelled at shutdown)
  CHECK(ids.take_or_reserve(store) == 42);
  CHECK(ids.size() == 3);
  CHECK(ids.take_or_reserve(store) == 43);  // from the reserve: no store call
  CHECK(store.reserved == std::vector<int>{4});
  CHECK(ids.take() == 44);
  CHECK(ids.refill_due(t0));  // the stuck refill was cleared when ids arrived
}

TEST_CASE("loops taking ids at once never get the same one", "[queue_ids]") {
  test::FakeStore store;
  QueueIdReserve ids(1000);
  ids.refill(store);
  std::vector<std::vector<std::int64_t>> taken(4);
  std::vector<std::thread> loops;
  for (auto& mine : taken)
    loops.emplace_back([&ids, &mine] {
      while (auto id = ids.take()) mine.push_back(*id);
    });
  for (auto& t : loops) t.join();
  std::vector<std::int64_t> all;
  for (const auto& mine : taken) all.insert(all.end(), mine.begin(), mine.end());
  std::sort(all.begin(), all.end());
  CHECK(all.size() == 1000);
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
}

}  // namespace wsmtp::listener
