// StoreWorkerPool's bounded queue (issue 15 item 6): the AUTH pool refuses a
// password check when max_queued are already waiting, instead of letting every
// client's wait grow. Checks are held at a gate, so the queue fills deterministically.
#include <catch2/catch.hpp>

#include <event2/event.h>
#include <event2/thread.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fake_store.h"
#include "handles.h"
#include "queue_ids.h"
#include "store_worker.h"

namespace wsmtp::listener {
namespace {

struct Gate {
  std::mutex mutex;
  std::condition_variable changed;
  bool open = false;
  int entered = 0;
};

class GatedStore : public test::FakeStore {
 public:
  explicit GatedStore(Gate& gate) : gate_(gate) {}
  bool verify_user(const std::string& username, const std::string& password) override {
    {
      std::unique_lock lock(gate_.mutex);
      ++gate_.entered;
      gate_.changed.notify_all();
      gate_.changed.wait(lock, [&] { return gate_.open; });
    }
    return test::FakeStore::verify_user(username, password);
  }

 private:
  Gate& gate_;
};

// Runs base until `count` results have been handed over (the pool activates its
// event from the worker thread; NO_EXIT_ON_EMPTY makes the loop wait for it).
void wait_for(event_base* base, const std::vector<std::uint64_t>& done, std::size_t count) {
  while (done.size() < count) event_base_loop(base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
}

}  // namespace

TEST_CASE("try_submit refuses beyond max_queued waiting jobs, and accepts again once they ran", "[store_worker]") {
  REQUIRE(evthread_use_pthreads() == 0);
  common::EventBasePtr base(event_base_new());
  REQUIRE(base);
  Gate gate;
  QueueIdReserve ids;
  std::vector<std::uint64_t> done;
  std::vector<bool> verified;
  {
    StoreWorkerPool pool([&] { return std::make_unique<GatedStore>(gate); }, 1, ids, 2);
    int endpoint = pool.attach(base.get(), [&](std::uint64_t id, StoreResult result) {
      CHECK(result.ok);
      done.push_back(id);
      verified.push_back(result.verified);
    });
    REQUIRE(pool.try_submit(endpoint, 1, VerifyUser{"carol", "s3cret"}));
    {
      std::unique_lock lock(gate.mutex);
      gate.changed.wait(lock, [&] { return gate.entered == 1; });  // 1 runs, none waits
    }
    CHECK(pool.try_submit(endpoint, 2, VerifyUser{"carol", "wrong"}));
    CHECK(pool.try_submit(endpoint, 3, VerifyUser{"carol", "wrong"}));
    CHECK_FALSE(pool.try_submit(endpoint, 4, VerifyUser{"carol", "s3cret"}));  // 2 waiting: full
    {
      std::lock_guard lock(gate.mutex);
      gate.open = true;
    }
    gate.changed.notify_all();
    wait_for(base.get(), done, 3);
    CHECK(pool.try_submit(endpoint, 5, VerifyUser{"carol", "s3cret"}));
    wait_for(base.get(), done, 4);
    pool.stop();
  }
  CHECK(done == std::vector<std::uint64_t>{1, 2, 3, 5});
  CHECK(verified == std::vector<bool>{true, false, false, true});
}

TEST_CASE("fail_queued fails every waiting job of every loop at once, except aborts", "[store_worker]") {
  REQUIRE(evthread_use_pthreads() == 0);
  common::EventBasePtr base(event_base_new());
  REQUIRE(base);
  Gate gate;
  QueueIdReserve ids;
  std::vector<std::uint64_t> done;
  std::vector<std::string> errors;
  {
    StoreWorkerPool pool([&] { return std::make_unique<GatedStore>(gate); }, 1, ids);
    auto on_done = [&](std::uint64_t id, StoreResult result) {
      done.push_back(id);
      errors.push_back(result.error);
    };
    int first = pool.attach(base.get(), on_done);
    int second = pool.attach(base.get(), on_done);
    pool.submit(first, 1, VerifyUser{"carol", "s3cret"});
    {
      std::unique_lock lock(gate.mutex);
      gate.changed.wait(lock, [&] { return gate.entered == 1; });  // 1 runs, held at the gate
    }
    pool.submit(first, 2, CheckRecipient{"bob@example.org", "example.org"});
    pool.submit(second, 3, AbortMessage{42});
    pool.submit(second, 4, CheckRecipient{"bob@example.org", "example.org"});
    pool.fail_queued("shard q2 left the rotation");
    wait_for(base.get(), done, 2);
    CHECK(done == std::vector<std::uint64_t>{2, 4});
    CHECK(errors == std::vector<std::string>{"shard q2 left the rotation", "shard q2 left the rotation"});
    {
      std::lock_guard lock(gate.mutex);
      gate.open = true;
    }
    gate.changed.notify_all();
    wait_for(base.get(), done, 4);  // the running check, then the abort
    pool.stop();
  }
  CHECK(done == std::vector<std::uint64_t>{2, 4, 1, 3});
}

}  // namespace wsmtp::listener
