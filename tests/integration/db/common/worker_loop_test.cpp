// The worker loop against a real PostgreSQL: a full batch is followed by
// another claim at once; a partial one means the queue looked drained, so the
// loop waits for a NOTIFY instead of claiming again to find nothing; woken, it
// gathers for a moment so that one claim covers what arrived meanwhile. And the
// cadence on which workers look for expired leases.
#include <atomic>
#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "pg/waiter.h"
#include "pg/worker_loop.h"
#include "test_database.h"

using namespace wsmtp;
using namespace std::chrono_literals;

namespace {

template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds within = 10s) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

}  // namespace

TEST_CASE("a full batch is followed by another claim; after a partial one the loop waits for a NOTIFY") {
  test::TestDatabase db;
  std::atomic<bool> stop{false};
  std::atomic<int> steps{0};
  // Step 1: a full batch (10 of 10); step 2: partial (3); then partial again.
  auto step = [&](pqxx::connection&) {
    int n = ++steps;
    return n == 1 ? 10 : 3;
  };
  std::thread worker([&] {
    common::pg::run_worker_loop(
        {.conninfo = db.conninfo(), .channel = common::pg::kDeliverChannel, .poll_interval = 60s, .batch_size = 10},
        stop, step);
  });
  CHECK(eventually([&] { return steps >= 2; }));
  // A loop that claimed again after the partial batch would do so at once;
  // waiting for the 60 s poll, it must not.
  std::this_thread::sleep_for(300ms);
  CHECK(steps == 2);
  auto conn = db.connect();
  pqxx::nontransaction(*conn).exec0("NOTIFY wsmtp_deliver");
  CHECK(eventually([&] { return steps == 3; }));
  stop = true;
  worker.join();
}

TEST_CASE("woken by NOTIFY, the loop gathers: notifications within gather_time make one claim") {
  test::TestDatabase db;
  std::atomic<bool> stop{false};
  std::atomic<int> steps{0};
  auto step = [&](pqxx::connection&) {
    ++steps;
    return 0;
  };
  std::thread worker([&] {
    common::pg::run_worker_loop({db.conninfo(), common::pg::kRouteChannel, 60s, 10, 1000ms}, stop, step);
  });
  CHECK(eventually([&] { return steps == 1; }));  // the first look, at start
  auto conn = db.connect();
  pqxx::nontransaction(*conn).exec0("NOTIFY wsmtp_route");
  std::this_thread::sleep_for(200ms);  // into the gather time
  for (int i = 0; i < 2; ++i) pqxx::nontransaction(*conn).exec0("NOTIFY wsmtp_route");
  CHECK(eventually([&] { return steps == 2; }));
  // The three arrived within the gather time: one claim covered them all (a
  // second would come a gather time, 1 s, after the first).
  std::this_thread::sleep_for(1500ms);
  CHECK(steps == 2);
  stop = true;
  worker.join();
}

TEST_CASE("a cadence is due at once, then not again within its period") {
  common::pg::Cadence hourly(std::chrono::hours(1));
  CHECK(hourly.due());
  CHECK_FALSE(hourly.due());
  CHECK_FALSE(hourly.due());
  common::pg::Cadence always(0ms);
  CHECK(always.due());
  CHECK(always.due());
}
