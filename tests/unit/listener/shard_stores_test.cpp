// Which pool runs which op in a group of shards: a new message's queue id comes
// from a shard in rotation, every later op of the message goes to the shard its
// id names, recipient checks to the directory; with no shard to take mail the
// op is refused at once (the session answers 451).
#include "shard_stores.h"

#include <catch2/catch.hpp>

#include <event2/event.h>
#include <event2/thread.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "fake_store.h"
#include "handles.h"
#include "queue_id.h"

namespace wsmtp::listener {
namespace {

// The calls made on each pool's stores, kept when a worker's store goes (its
// thread ends at stop()).
struct Made {
  std::mutex mutex;
  std::map<std::string, std::vector<std::string>> calls;
};

class RecordingStore : public test::FakeStore {
 public:
  RecordingStore(Made& made, std::string name) : made_(made), name_(std::move(name)) {}
  ~RecordingStore() override {
    std::lock_guard lock(made_.mutex);
    auto& all = made_.calls[name_];
    all.insert(all.end(), calls.begin(), calls.end());
  }

 private:
  Made& made_;
  std::string name_;
};

ShardStores::StoreFactory factory(Made& made, const std::string& name, std::int64_t first_id) {
  return [&made, name, first_id] {
    auto store = std::make_unique<RecordingStore>(made, name);
    store->first_id(first_id);
    return store;
  };
}

std::vector<std::string> calls(Made& made, const std::string& name) {
  std::lock_guard lock(made.mutex);
  return made.calls[name];
}

struct Harness {
  Harness() {
    REQUIRE(evthread_use_pthreads() == 0);
    base.reset(event_base_new());
    REQUIRE(base);
  }
  // Submits op and runs the loop until its result is back.
  StoreResult run(ShardStores& stores, const ShardStores::Endpoints& endpoints, StoreOp op) {
    auto before = results.size();
    REQUIRE_FALSE(stores.submit(endpoints, ++next, std::move(op)));
    while (results.size() == before) event_base_loop(base.get(), EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
    return results.back();
  }
  common::EventBasePtr base;
  std::vector<StoreResult> results;
  std::uint64_t next = 0;
};

common::CompleteMessage whole(std::int64_t id) {
  return {{"a@example.org", "192.0.2.7", "client.example", "mx1", {"bob@example.org"}}, "x\r\n", id};
}

}  // namespace

TEST_CASE("each message's ops go to the shard its queue id names; recipients to the directory", "[shard_stores]") {
  Harness h;
  Made made;
  Placement placement({{.name = "q1", .id = 1, .weight = 1}, {.name = "q2", .id = 2, .weight = 1}}, true);
  const auto q1 = common::kShardIdSpan + 1, q2 = 2 * common::kShardIdSpan + 1;
  {
    ShardStores stores(placement, {factory(made, "q1", q1), factory(made, "q2", q2)}, std::nullopt,
                       factory(made, "directory", 0), 1);
    auto endpoints = stores.attach(h.base.get(), [&](std::uint64_t, StoreResult r) { h.results.push_back(r); });
    REQUIRE(endpoints.per_pool.size() == 3);

    std::map<int, int> shards;
    for (int i = 0; i < 40; ++i) {
      auto id = h.run(stores, endpoints, TakeQueueId{});
      REQUIRE(id.ok);
      shards[common::shard_of(id.msg_id)]++;
    }
    CHECK(shards[1] + shards[2] == 40);
    CHECK(shards[1] > 0);
    CHECK(shards[2] > 0);
    // The reserves they filled hand out ids of their own shard only.
    for (int i = 0; i < 20; ++i) {
      auto id = stores.take();
      if (id) CHECK((common::shard_of(*id) == 1 || common::shard_of(*id) == 2));
    }

    CHECK(h.run(stores, endpoints, CheckRecipient{"bob@example.org", "example.org"}).ok);
    auto taken = h.run(stores, endpoints, TakeQueueId{});
    REQUIRE(taken.ok);
    CHECK(h.run(stores, endpoints, StoreWhole{whole(taken.msg_id)}).ok);
    auto on = common::shard_of(taken.msg_id) == 1 ? "q1" : "q2";
    auto off = common::shard_of(taken.msg_id) == 1 ? "q2" : "q1";
    stores.stop();
    CHECK(calls(made, "directory") == std::vector<std::string>{"check bob@example.org"});
    CHECK(calls(made, on) == std::vector<std::string>{"whole " + std::to_string(taken.msg_id)});
    CHECK(calls(made, off).empty());
  }
}

TEST_CASE("queue ids come only from shards in rotation; none in rotation: refused at once", "[shard_stores]") {
  Harness h;
  Made made;
  Placement placement({{.name = "q1", .id = 1, .weight = 1}, {.name = "q2", .id = 2, .weight = 1}}, true);
  ShardStores stores(placement,
                     {factory(made, "q1", common::kShardIdSpan + 1), factory(made, "q2", 2 * common::kShardIdSpan + 1)},
                     0, nullptr, 1);
  auto endpoints = stores.attach(h.base.get(), [&](std::uint64_t, StoreResult r) { h.results.push_back(r); });
  REQUIRE(endpoints.per_pool.size() == 2);  // q1's database is the directory: no pool of its own
  placement.set_reachable(0, false);
  for (int i = 0; i < 20; ++i) {
    auto id = h.run(stores, endpoints, TakeQueueId{});
    REQUIRE(id.ok);
    CHECK(common::shard_of(id.msg_id) == 2);
    if (auto fast = stores.take()) CHECK(common::shard_of(*fast) == 2);
  }
  // Directory questions still go to q1's database (it is the directory).
  CHECK(h.run(stores, endpoints, CheckRecipient{"bob@example.org", "example.org"}).ok);
  placement.set_reachable(1, false);
  CHECK_FALSE(stores.take());
  auto refused = stores.submit(endpoints, 99, TakeQueueId{});
  REQUIRE(refused);
  CHECK(refused->no_shard);
  CHECK_FALSE(refused->ok);
  placement.set_reachable(0, true);
  auto back = h.run(stores, endpoints, TakeQueueId{});
  REQUIRE(back.ok);
  CHECK(common::shard_of(back.msg_id) == 1);
  stores.stop();
  CHECK(calls(made, "q1").front() == "check bob@example.org");
}

TEST_CASE("a message whose shard left the rotation gets a failure at once; its abort still goes", "[shard_stores]") {
  Harness h;
  Made made;
  Placement placement({{.name = "q1", .id = 1, .weight = 1}, {.name = "q2", .id = 2, .weight = 1}}, true);
  ShardStores stores(placement,
                     {factory(made, "q1", common::kShardIdSpan + 1), factory(made, "q2", 2 * common::kShardIdSpan + 1)},
                     std::nullopt, factory(made, "directory", 0), 1);
  auto endpoints = stores.attach(h.base.get(), [&](std::uint64_t, StoreResult r) { h.results.push_back(r); });
  placement.set_reachable(0, false);
  auto id = h.run(stores, endpoints, TakeQueueId{});  // placed on q2
  REQUIRE(id.ok);
  REQUIRE(common::shard_of(id.msg_id) == 2);
  CHECK(h.run(stores, endpoints, BeginMessage{id.msg_id, whole(id.msg_id).envelope}).ok);
  placement.set_reachable(0, true);
  placement.set_reachable(1, false);
  auto refused = stores.submit(endpoints, 7, AppendBody{id.msg_id, 0, "x\r\n"});
  REQUIRE(refused);
  CHECK_FALSE(refused->ok);
  CHECK_FALSE(refused->no_shard);
  CHECK_THAT(refused->error, Catch::Contains("shard q2 is out of rotation"));
  CHECK(h.run(stores, endpoints, AbortMessage{id.msg_id}).ok);
  stores.stop();
  CHECK(calls(made, "q2") ==
        std::vector<std::string>{"begin " + std::to_string(id.msg_id), "abort " + std::to_string(id.msg_id)});
}

}  // namespace wsmtp::listener
