// A shard's health over time: out of rotation at once when a store reports it
// lost, checked again at most once per pause, back when a check passes; a
// shard that is the wrong database stays out from the first check on.
#include "shard_probe.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

namespace wsmtp::listener {
namespace {

using namespace std::chrono_literals;

Placement two() {
  return Placement({{.name = "q1", .id = 1, .weight = 1}, {.name = "q2", .id = 2, .weight = 1}}, true);
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds within = 10s) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("a lost shard is out at once and back after a passing check", "[shard_probe]") {
  auto placement = two();
  std::atomic<bool> answers{true};
  std::atomic<int> left{0};
  ShardProbe probe(
      placement, 1,
      [&] {
        ShardFault fault;
        if (!answers) fault.why = "connection refused";
        return fault;
      },
      20ms, [&] { ++left; });
  CHECK(probe.checks() == 0);  // nothing before start()
  probe.start();
  REQUIRE(eventually([&] { return probe.checks() >= 1; }));  // the check at start
  CHECK(placement.in_rotation(1));
  answers = false;
  probe.lost({.why = "server closed the connection", .wrong_database = false});
  CHECK_FALSE(placement.in_rotation(1));  // at once, before any check
  CHECK(left == 1);                       // its queued work is failed at once
  probe.lost({.why = "server closed the connection", .wrong_database = false});
  CHECK(placement.pick(0xffffffffu) == 0u);
  auto before = probe.checks();
  REQUIRE(eventually([&] { return probe.checks() >= before + 3; }));
  CHECK_FALSE(placement.in_rotation(1));  // failing checks keep it out
  CHECK(left == 1);                       // once per outage
  answers = true;
  CHECK(eventually([&] { return placement.in_rotation(1); }));
  // Back in rotation: no more checks until it is lost again.
  auto settled = probe.checks();
  std::this_thread::sleep_for(100ms);
  CHECK(probe.checks() == settled);
}

TEST_CASE("checks are at most one per pause however often the shard is reported", "[shard_probe]") {
  auto placement = two();
  ShardProbe probe(
      placement, 0, [] { return ShardFault{.why = "down", .wrong_database = false}; }, 200ms, nullptr);
  probe.start();
  REQUIRE(eventually([&] { return probe.checks() >= 1; }));
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 500ms) {
    probe.lost({.why = "down", .wrong_database = false});
    std::this_thread::sleep_for(1ms);
  }
  CHECK(probe.checks() <= 4);  // the one at start, then one per 200 ms
  CHECK_FALSE(placement.in_rotation(0));
  CHECK(placement.in_rotation(1));
}

TEST_CASE("a shard that is the wrong database is out from its first check on", "[shard_probe]") {
  auto placement = two();
  ShardProbe probe(
      placement, 1, [] { return ShardFault{.why = "its database is shard \"q1\" (id 1)", .wrong_database = true}; },
      10ms, nullptr);
  probe.start();
  REQUIRE(eventually([&] { return probe.checks() >= 3; }));
  CHECK_FALSE(placement.in_rotation(1));
  for (std::uint32_t draw : {0u, 0x80000000u, 0xffffffffu}) CHECK(placement.pick(draw) == 0u);
}

}  // namespace wsmtp::listener
