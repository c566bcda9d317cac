// Backpressure's pure rules (backlog.h): which keys a message counts under for
// each kind of sender, which quota each key is held to, and BacklogWatch's
// snapshot (a sample replaces it; a failed sample keeps the last one).
#include "backlog.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backlog_watch.h"
#include "client_limits.h"
#include "fake_store.h"

namespace wsmtp::listener {

using Keys = std::vector<std::string>;

TEST_CASE("backlog keys: user alone, client alone, or sender domain and client", "[backlog]") {
  struct Case {
    SenderKind kind;
    const char* user;
    const char* client;
    const char* from;
    Keys keys;
  };
  const Case cases[] = {
      {SenderKind::authenticated, "carol", "192.0.2.1", "x@Example.COM", {"u:carol"}},
      {SenderKind::authenticated, "carol", "127.0.0.1", "", {"u:carol"}},
      {SenderKind::trusted, "", "127.0.0.1", "app@example.com", {"c:127.0.0.1"}},
      {SenderKind::trusted, "", "10.0.0.1", "", {"c:10.0.0.1"}},
      {SenderKind::other, "", "192.0.2.1", "Bulk@Spam.EXAMPLE", {"c:192.0.2.1", "d:spam.example"}},
      {SenderKind::other, "", "192.0.2.1", "\"a@b\"@x.example", {"c:192.0.2.1", "d:x.example"}},
      {SenderKind::other, "", "2001:db8:1:2::/64", "a@z.example", {"c:2001:db8:1:2::/64", "d:z.example"}},
      {SenderKind::other, "", "192.0.2.1", "", {"c:192.0.2.1"}},  // the null sender has no domain
  };
  for (const auto& c : cases) {
    INFO(c.from << " from " << c.client);
    CHECK(backlog_keys(c.kind, c.user, c.client, c.from) == c.keys);
  }
  // The client key is the listener's limit_key: an IPv6 client by its network.
  CHECK(backlog_keys(SenderKind::other, "", limit_key(*IpAddress::parse("2001:db8:1:2::99"), 64), "a@z.example") ==
        Keys{"c:2001:db8:1:2::/64", "d:z.example"});
}

TEST_CASE("each key is held to its own quota; at the quota is over", "[backlog]") {
  BacklogQuotas q{.sender_domain = 100, .client = 50, .user = 20, .trusted = 0};
  CHECK(q.threshold() == 20);
  BacklogTotals totals{{"d:spam.example", 100}, {"c:192.0.2.1", 49}, {"u:carol", 20}, {"c:127.0.0.1", 1000000}};

  auto over = over_quota(totals, {"c:192.0.2.1", "d:spam.example"}, SenderKind::other, q);
  REQUIRE(over);
  CHECK(over->key == "d:spam.example");
  CHECK(over->total == 100);
  CHECK(over->quota == 100);
  CHECK_FALSE(over_quota(totals, {"c:192.0.2.1", "d:ok.example"}, SenderKind::other, q));
  totals["c:192.0.2.1"] = 50;
  CHECK(over_quota(totals, {"c:192.0.2.1", "d:ok.example"}, SenderKind::other, q)->key == "c:192.0.2.1");
  CHECK(over_quota(totals, {"u:carol"}, SenderKind::authenticated, q)->quota == 20);
  CHECK_FALSE(over_quota(totals, {"u:dave"}, SenderKind::authenticated, q));
  // A trusted client is held to the trusted quota, 0 here: no limit at all.
  CHECK_FALSE(over_quota(totals, {"c:127.0.0.1"}, SenderKind::trusted, q));
  q.trusted = 1000000;
  CHECK(over_quota(totals, {"c:127.0.0.1"}, SenderKind::trusted, q));
  // A quota of 0 is off whatever the total.
  q.sender_domain = 0;
  CHECK_FALSE(over_quota(totals, {"d:spam.example"}, SenderKind::other, q));
  CHECK(BacklogQuotas{0, 0, 0, 0}.threshold() == 0);
  CHECK(BacklogQuotas{}.threshold() == 10000);
}

TEST_CASE("a refusal names the domain, the client or the user", "[backlog]") {
  CHECK(backlog_subject("d:spam.example") == "spam.example");
  CHECK(backlog_subject("c:192.0.2.1") == "192.0.2.1");
  CHECK(backlog_subject("u:carol") == "user carol");
}

TEST_CASE("the watch keeps only the keys at or above the smallest quota", "[backlog]") {
  std::atomic<int> made{0};
  BacklogWatch watch({[&]() -> std::unique_ptr<common::Store> {
                       ++made;
                       auto store = std::make_unique<test::FakeStore>();
                       store->backlogs = {{"d:big.example", 7}, {"d:small.example", 2}};
                       return store;
                     }},
                     5, std::chrono::milliseconds(1));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (watch.snapshot()->empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto first = watch.snapshot();
  REQUIRE(first->size() == 1);
  CHECK(first->at("d:big.example") == 7);
  watch.stop();
  CHECK(made == 1);  // one connection, kept between samples
}

TEST_CASE("a failed sample keeps the last snapshot; threshold 0 empties it", "[backlog]") {
  std::atomic<int> attempts{0};
  BacklogWatch watch({[&]() -> std::unique_ptr<common::Store> {
                       ++attempts;
                       throw std::runtime_error("database down");
                     }},
                     5, std::chrono::milliseconds(1));
  watch.observe({{"d:big.example", 9}});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (attempts < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(attempts >= 3);
  CHECK(watch.snapshot()->at("d:big.example") == 9);
  // Quotas all turned off by a reload: nothing is over any more.
  watch.set_threshold(0);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!watch.snapshot()->empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(watch.snapshot()->empty());
}

TEST_CASE("over several shards a key's total is the sum of its parts, also of parts below the threshold", "[backlog]") {
  auto shard = [](std::vector<std::pair<std::string, std::uint64_t>> backlogs) {
    return [backlogs]() -> std::unique_ptr<common::Store> {
      auto store = std::make_unique<test::FakeStore>();
      store->backlogs = backlogs;
      return store;
    };
  };
  // Quota 10 over two shards: each reports from 5 up, and the keys the other reported.
  BacklogWatch watch({shard({{"d:even.example", 5}, {"d:skew.example", 7}, {"d:small.example", 4}}),
                      shard({{"d:even.example", 5}, {"d:skew.example", 3}, {"d:small.example", 4}})},
                     10, std::chrono::milliseconds(1));
  CHECK(watch.part_threshold(10) == 5);
  CHECK(watch.part_threshold(11) == 6);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto done = [&] {
    auto s = watch.snapshot();
    return s->count("d:skew.example") && s->at("d:skew.example") == 10;
  };
  while (!done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  watch.stop();
  auto totals = watch.snapshot();
  CHECK(totals->at("d:even.example") == 10);
  // 3 on the second shard is below its part threshold; counted once the first reported the key.
  CHECK(totals->at("d:skew.example") == 10);
  // 8 in all: under the quota, and no shard's part reaches 5.
  CHECK(totals->count("d:small.example") == 0);
}

TEST_CASE("a shard that cannot be sampled keeps its last part in the sum", "[backlog]") {
  BacklogWatch watch(std::vector<BacklogWatch::StoreFactory>(2), 10, std::chrono::milliseconds(1));
  watch.observe_shard(0, {{"d:a.example", 6}}, 10);
  watch.observe_shard(1, {{"d:a.example", 6}}, 10);
  CHECK(watch.snapshot()->at("d:a.example") == 12);
  CHECK(watch.candidates(1) == std::vector<std::string>{"d:a.example"});
  // Shard 0 failing sends nothing: its 6 stay; shard 1's new sample replaces its own.
  watch.observe_shard(1, {{"d:a.example", 3}}, 10);
  CHECK(watch.snapshot()->count("d:a.example") == 0);
  watch.observe_shard(1, {{"d:a.example", 4}}, 10);
  CHECK(watch.snapshot()->at("d:a.example") == 10);
}

}  // namespace wsmtp::listener
