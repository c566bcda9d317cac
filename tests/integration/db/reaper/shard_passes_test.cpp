// The reaper over a queue group (issue 17): one pass per shard, each on its
// own connection, checked for the shard's identity; a shard that cannot be
// reached or is the wrong database fails alone while the others are reaped.
#include <catch2/catch.hpp>

#include <chrono>

#include "pg/shards.h"
#include "pg/transitions.h"
#include "shard_passes.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common;
using namespace std::chrono_literals;

namespace {

// A receipt abandoned in state 0, which a pass with receive_timeout 0 deletes.
void abandoned_receipt(test::TestDatabase& db) {
  auto conn = db.connect();
  pqxx::work tx(*conn);
  pg::create_message(tx, {"s@x.org", "192.0.2.7", "client.example", "test", {"a@y.org"}});
  tx.commit();
}

int messages(test::TestDatabase& db) { return db.query("SELECT count(*) FROM messages")[0][0].as<int>(); }

ShardConfig claimed(test::TestDatabase& db, const std::string& name, int id) {
  ShardConfig shard{.name = name, .id = id, .weight = 1, .conninfo = db.conninfo()};
  auto conn = db.connect();
  pg::claim_shard_identity(*conn, shard);
  return shard;
}

}  // namespace

TEST_CASE("one reaper pass per shard: an unreachable or wrong shard fails alone") {
  test::TestDatabase directory, q1, q2, q4;
  DatabaseConfig group{
      .conninfo = directory.conninfo(),
      .shards = {claimed(q1, "q1", 1),
                 claimed(q2, "q2", 2),
                 {.name = "q3", .id = 3, .weight = 1, .conninfo = directory.conninfo() + " dbname=wsmtp_no_such_shard"},
                 claimed(q4, "q4", 4)}};
  group.shards[3].id = 5;  // q4's database says it is shard 4: refused
  for (auto* db : {&q1, &q2, &q4}) abandoned_receipt(*db);
  reap::ReaperConfig config;
  config.receive_timeout = 0s;
  QueueConfig queue;

  auto passes = reap::reap_shards_once(group, config, queue);
  REQUIRE(passes.size() == 4);
  CHECK(passes[0].shard == "q1");
  REQUIRE(passes[0].summary);
  CHECK(passes[0].summary->aborted_deleted == 1);
  REQUIRE(passes[1].summary);
  CHECK(passes[1].summary->aborted_deleted == 1);
  CHECK_FALSE(passes[2].summary);
  CHECK_THAT(passes[2].error, Catch::Contains("wsmtp_no_such_shard"));
  CHECK_FALSE(passes[3].summary);
  CHECK_THAT(passes[3].error, Catch::Contains("its database is shard \"q4\" (id 4)"));
  CHECK(messages(q1) == 0);
  CHECK(messages(q2) == 0);
  CHECK(messages(q4) == 1);  // the wrong database is never reaped
}

TEST_CASE("the one-server layout reaps its one database as before") {
  test::TestDatabase db;
  abandoned_receipt(db);
  DatabaseConfig single{.conninfo = db.conninfo(),
                        .shards = {{.name = "default", .id = 0, .weight = 1, .conninfo = db.conninfo()}}};
  reap::ReaperConfig config;
  config.receive_timeout = 0s;
  auto passes = reap::reap_shards_once(single, config, QueueConfig{});
  REQUIRE(passes.size() == 1);
  REQUIRE(passes[0].summary);
  CHECK(passes[0].summary->aborted_deleted == 1);
  CHECK(messages(db) == 0);
}
