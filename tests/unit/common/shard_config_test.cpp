// [database] and [shard NAME]: the queue group's configuration, and the queue
// id that names its shard.
#include <catch2/catch.hpp>

#include "config/common_config.h"
#include "config/config_file.h"
#include "queue_id.h"

using namespace wsmtp::common;

namespace {

DatabaseConfig read(const std::string& text) { return read_database_config(ConfigFile::parse(text, "t.conf")); }

}  // namespace

TEST_CASE("without [shard] sections the directory's database is the one shard, id 0") {
  auto c = read("[database]\nconninfo = dbname=wsmtp\n");
  REQUIRE(c.shards.size() == 1);
  CHECK(c.shards[0].name == "default");
  CHECK(c.shards[0].id == 0);
  CHECK(c.shards[0].conninfo == "dbname=wsmtp");
  CHECK(c.single());
  CHECK(c.is_directory(c.shards[0]));
}

TEST_CASE("shards are read with their id, weight and conninfo, sorted by id") {
  auto c = read(
      "[database]\nconninfo = dbname=dir\n"
      "[shard b]\nid = 2\nweight = 3\nconninfo = host=b1,b2 dbname=q target_session_attrs=read-write\n"
      "[shard a]\nid = 1\nconninfo = dbname=dir\n");
  REQUIRE(c.shards.size() == 2);
  CHECK(c.shards[0].name == "a");
  CHECK(c.shards[0].weight == 1);
  CHECK(c.is_directory(c.shards[0]));
  CHECK(c.shards[1].name == "b");
  CHECK(c.shards[1].weight == 3);
  CHECK_FALSE(c.is_directory(c.shards[1]));
  CHECK_FALSE(c.single());
  REQUIRE(c.shard_by_id(2));
  CHECK(c.shard_by_id(2)->name == "b");
  CHECK_FALSE(c.shard_by_id(0));
}

TEST_CASE("a bad shard section names the problem") {
  CHECK_THROWS_WITH(read("[shard a]\nconninfo = dbname=q\n"), Catch::Contains("[shard a] id: is required"));
  CHECK_THROWS_WITH(read("[shard a]\nid = 1\n"), Catch::Contains("[shard a] conninfo: is required"));
  CHECK_THROWS_WITH(read("[shard a]\nid = 99999\nconninfo = x\n"), Catch::Contains("[shard a] id"));
  CHECK_THROWS_WITH(read("[shard a]\nid = 1\nconninfo = x\n[shard b]\nid = 1\nconninfo = y\n"),
                    Catch::Contains("another shard already has id 1"));
  CHECK_THROWS_WITH(read("[shard a]\nid = 1\nconninfo = x\n[shard b]\nid = 2\nconninfo = x\n"),
                    Catch::Contains("another shard already uses this database"));
  CHECK_THROWS_WITH(read("[shard a b]\nid = 1\nconninfo = x\n"), Catch::Contains("\"a b\""));
  CHECK_THROWS_WITH(read("[shard a]\nid = 1\nconninfo = x password=y\n"), Catch::Contains("password"));
  CHECK_THROWS_WITH(read("[shard a]\nid = 1\nconninfo = x\nwieght = 2\n"), Catch::Contains("wieght: unknown key"));
  CHECK_THROWS_WITH(read("[shard a]\nid = 1\nweight = 0\nconninfo = x\n"), Catch::Contains("every shard has weight 0"));
}

TEST_CASE("a queue id names its shard in its leading digits") {
  CHECK(shard_of(4711) == 0);
  CHECK(shard_of(kShardIdSpan - 1) == 0);
  CHECK(shard_of(kShardIdSpan + 4711) == 1);
  CHECK(format_queue_id(kShardIdSpan + 4711) == "100000000004711");
  CHECK(shard_of(static_cast<std::int64_t>(kMaxShardId) * kShardIdSpan + kShardIdSpan - 1) == kMaxShardId);
  CHECK(parse_queue_id("300000000004711") == 3 * kShardIdSpan + 4711);
}
