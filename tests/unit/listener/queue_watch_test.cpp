// QueueWatch's rule (full at or above queue_max_size, cleared below it) and
// that an unset limit costs nothing: no thread, no Store, never full.
#include "queue_watch.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "fake_store.h"

namespace wsmtp::listener {

TEST_CASE("queue_max_size 0 starts nothing and is never full", "[queue_watch]") {
  int made = 0;
  QueueWatch watch({{.name = "",
                     .factory =
                         [&] {
                           ++made;
                           return std::make_unique<test::FakeStore>();
                         }}},
                   0, std::chrono::milliseconds(1), nullptr);
  watch.stop();
  CHECK(made == 0);
  CHECK_FALSE(watch.full(0));
}

TEST_CASE("full at or above the limit, not full again below it", "[queue_watch]") {
  // The thread's samples all fail (no Store), and a failed sample keeps the
  // last verdict: only observe() moves the flag here.
  std::vector<std::pair<std::size_t, bool>> changes;
  QueueWatch watch(
      {{.name = "",
        .factory = []() -> std::unique_ptr<common::Store> { throw std::runtime_error("no database here"); }}},
      1000, std::chrono::milliseconds(1), [&](std::size_t shard, bool full) { changes.emplace_back(shard, full); });
  watch.observe(0, 999);
  CHECK_FALSE(watch.full(0));
  watch.observe(0, 1000);
  CHECK(watch.full(0));
  watch.observe(0, 5000);
  CHECK(watch.full(0));
  watch.observe(0, 10);
  CHECK_FALSE(watch.full(0));
  // Each change once.
  CHECK(changes == std::vector<std::pair<std::size_t, bool>>{{0, true}, {0, false}});
}

TEST_CASE("each shard has its own flag, sampled from its own database", "[queue_watch]") {
  auto sized = [](std::uint64_t size) {
    return [size] {
      auto store = std::make_unique<test::FakeStore>();
      store->database_size = size;
      return store;
    };
  };
  std::mutex mutex;
  std::vector<std::pair<std::size_t, bool>> changes;
  QueueWatch watch({{.name = "q1", .factory = sized(10)}, {.name = "q2", .factory = sized(5000)}}, 1000,
                   std::chrono::milliseconds(1), [&](std::size_t shard, bool full) {
                     std::lock_guard lock(mutex);
                     changes.emplace_back(shard, full);
                   });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!watch.full(1) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  watch.stop();
  CHECK(watch.full(1));
  CHECK_FALSE(watch.full(0));
  CHECK(changes == std::vector<std::pair<std::size_t, bool>>{{1, true}});
}

}  // namespace wsmtp::listener
