// wsmtpctl queue over several shards: counts add up, the oldest age is the
// largest, and top lists are summed by key before they are cut.
#include <catch2/catch.hpp>

#include "ctl/queue_totals.h"

using namespace wsmtp;
using namespace wsmtp::ctl;
using common::MsgState;
using common::pg::BacklogEntry;
using common::pg::StateSummary;

namespace {

std::vector<StateSummary> states(std::int64_t received, std::int64_t held, double oldest) {
  std::vector<StateSummary> out;
  for (auto s : common::kAllStates) out.push_back({s, 0, 0, 0});
  out[1] = {MsgState::received, received, held, oldest};
  return out;
}

ShardQueue shard(std::string name, int id, std::int64_t received, std::int64_t held, double oldest) {
  ShardQueue q;
  q.name = std::move(name);
  q.id = id;
  q.summary = states(received, held, oldest);
  return q;
}

}  // namespace

TEST_CASE("counts and held add up over the shards; the oldest age is the largest") {
  auto a = shard("q1", 1, 3, 1, 50);
  auto b = shard("q2", 2, 4, 2, 20);
  a.backlog.deferred_messages = 2;
  b.backlog.deferred_messages = 5;
  auto t = sum_queues({a, b}, 10);
  REQUIRE(t.summary.size() == 6);
  CHECK(t.summary[1].state == MsgState::received);
  CHECK(t.summary[1].count == 7);
  CHECK(t.summary[1].held == 3);
  CHECK(t.summary[1].oldest_age_seconds == 50);
  CHECK(t.summary[0].count == 0);
  CHECK(t.deferred == 7);
}

TEST_CASE("a key that leads no shard can lead the sum") {
  auto a = shard("q1", 1, 0, 0, 0);
  auto b = shard("q2", 2, 0, 0, 0);
  a.backlog.top_senders = {{"a@x", 10}, {"both@x", 9}};
  b.backlog.top_senders = {{"b@x", 10}, {"both@x", 9}};
  auto t = sum_queues({a, b}, 2);
  REQUIRE(t.top_senders.size() == 2);
  CHECK(t.top_senders[0] == std::pair<std::string, std::int64_t>{"both@x", 18});
  CHECK(t.top_senders[1] == std::pair<std::string, std::int64_t>{"a@x", 10});  // ties by key
}

TEST_CASE("backpressure keys are summed by kind and name") {
  auto a = shard("q1", 1, 0, 0, 0);
  auto b = shard("q2", 2, 0, 0, 0);
  a.backlogs = {BacklogEntry{"client", "192.0.2.1", 3}, BacklogEntry{"user", "u1", 1}};
  b.backlogs = {BacklogEntry{"client", "192.0.2.1", 2}, BacklogEntry{"sender domain", "192.0.2.1", 4}};
  auto t = sum_queues({a, b}, 10);
  REQUIRE(t.backlogs.size() == 3);
  CHECK(t.backlogs[0].kind == "client");
  CHECK(t.backlogs[0].count == 5);
  CHECK(t.backlogs[1].kind == "sender domain");
  CHECK(t.backlogs[1].count == 4);
  CHECK(t.backlogs[2].count == 1);
  CHECK(sum_queues({a, b}, 1).backlogs.size() == 1);
}

TEST_CASE("one shard keeps its own order and is only cut") {
  auto a = shard("default", 0, 1, 0, 5);
  // The database's collation may order ties otherwise than bytes do.
  a.backlog.top_senders = {{"b@x", 2}, {"A@x", 2}, {"c@x", 1}};
  auto t = sum_queues({a}, 2);
  REQUIRE(t.top_senders.size() == 2);
  CHECK(t.top_senders[0].first == "b@x");
  CHECK(t.top_senders[1].first == "A@x");
  CHECK(t.summary[1].count == 1);
}

TEST_CASE("no shard covered: every state with zero") {
  auto t = sum_queues({}, 10);
  REQUIRE(t.summary.size() == 6);
  for (const auto& s : t.summary) CHECK(s.count == 0);
}
