// wsmtpctl db status's verdict on each database of the group.
#include <catch2/catch.hpp>

#include "ctl/db_health.h"
#include "ctl/shard_sweep.h"

using namespace wsmtp::ctl;

namespace {

DatabaseHealth shard(int configured_id, std::optional<ClaimedIdentity> claimed, int version = 23) {
  DatabaseHealth h;
  h.name = "q2";
  h.is_shard = true;
  h.configured_name = "q2";
  h.configured_id = configured_id;
  h.reachable = true;
  h.database_version = version;
  h.binary_version = 23;
  h.claimed = std::move(claimed);
  return h;
}

bool has(const std::vector<std::string>& problems, const std::string& part) {
  for (const auto& p : problems)
    if (p.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("a current shard claimed under its configured id is healthy") {
  CHECK(health_problems(shard(2, ClaimedIdentity{"q2", 2}), false).empty());
  CHECK(database_role(shard(2, std::nullopt)) == "shard");
}

TEST_CASE("a database claimed as another shard is an error naming both") {
  auto p = health_problems(shard(2, ClaimedIdentity{"q7", 7}), false);
  REQUIRE(p.size() == 1);
  CHECK(has(p, "its database is shard \"q7\" (id 7), not id 2"));
  CHECK(has(health_problems(shard(2, ClaimedIdentity{"old", 2}), false), "claimed as \"old\""));
}

TEST_CASE("unclaimed: an error in a group, accepted in the one-server layout") {
  CHECK(has(health_problems(shard(2, std::nullopt), false), "no shard identity"));
  CHECK(health_problems(shard(0, std::nullopt), true).empty());
}

TEST_CASE("behind or ahead of this binary, and unreachable") {
  auto behind = shard(2, std::nullopt, 21);
  behind.pending.resize(2);
  auto p = health_problems(behind, false);
  REQUIRE(p.size() == 1);  // the pending migrations say it; no second complaint about the identity
  CHECK(has(p, "2 pending migration(s); run wsmtpctl db migrate"));
  CHECK(has(health_problems(shard(2, ClaimedIdentity{"q2", 2}, 24), false), "newer than this binary"));
  DatabaseHealth down;
  down.name = "q2";
  down.is_shard = true;
  down.error = "connection refused";
  CHECK(has(health_problems(down, false), "unreachable: connection refused"));
}

TEST_CASE("the directory's row names its role") {
  DatabaseHealth h;
  h.is_directory = true;
  CHECK(database_role(h) == "directory");
  h.is_shard = true;
  CHECK(database_role(h) == "directory+shard");
}

TEST_CASE("named ids go to the shard their queue id names") {
  auto by = ids_by_shard({7, 200000000000001, 100000000000005, 200000000000002});
  REQUIRE(by.size() == 3);
  CHECK(by[0] == std::vector<std::int64_t>{7});
  CHECK(by[1] == std::vector<std::int64_t>{100000000000005});
  CHECK(by[2] == std::vector<std::int64_t>{200000000000001, 200000000000002});
}
