// QueueWatch's rule (full at or above queue_max_size, cleared below it) and
// that an unset limit costs nothing: no thread, no Store, never full.
#include "queue_watch.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>

#include "fake_store.h"

namespace wsmtp::listener {

TEST_CASE("queue_max_size 0 starts nothing and is never full", "[queue_watch]") {
  int made = 0;
  QueueWatch watch(
      [&] {
        ++made;
        return std::make_unique<test::FakeStore>();
      },
      0, std::chrono::milliseconds(1));
  watch.stop();
  CHECK(made == 0);
  CHECK_FALSE(watch.full());
}

TEST_CASE("full at or above the limit, not full again below it", "[queue_watch]") {
  // The thread's samples all fail (no Store), and a failed sample keeps the
  // last verdict: only observe() moves the flag here.
  QueueWatch watch([]() -> std::unique_ptr<common::Store> { throw std::runtime_error("no database here"); }, 1000,
                   std::chrono::milliseconds(1));
  watch.observe(999);
  CHECK_FALSE(watch.full());
  watch.observe(1000);
  CHECK(watch.full());
  CHECK(watch.full_flag().load());
  watch.observe(5000);
  CHECK(watch.full());
  watch.observe(10);
  CHECK_FALSE(watch.full());
}

}  // namespace wsmtp::listener
