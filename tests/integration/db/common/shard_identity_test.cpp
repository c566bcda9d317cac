// A queue shard's identity (migration 023) against a real PostgreSQL: claimed
// once, checked on every later claim and by every program at connect; the
// claim confines the message id sequence to the shard's range, so queue ids
// name their shard.
#include <catch2/catch.hpp>

#include "pg/shards.h"
#include "queue_id.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common;
using namespace wsmtp::common::pg;

namespace {

std::int64_t next_id(test::TestDatabase& db) {
  return db.query("SELECT reserve_message_ids(1)")[0][0].as<std::int64_t>();
}

DatabaseConfig group_with(const ShardConfig& shard) { return {.conninfo = "dbname=directory", .shards = {shard}}; }

}  // namespace

TEST_CASE("a claimed shard issues ids in its range and keeps its id") {
  test::TestDatabase db;
  auto conn = db.connect();
  const ShardConfig two{.name = "b", .id = 2, .weight = 1, .conninfo = db.conninfo()};
  CHECK_FALSE(read_shard_identity(*conn));
  claim_shard_identity(*conn, two);
  auto identity = read_shard_identity(*conn);
  REQUIRE(identity);
  CHECK(identity->name == "b");
  CHECK(identity->id == 2);
  auto first = next_id(db);
  CHECK(first == 2 * kShardIdSpan + 1);
  CHECK(shard_of(next_id(db)) == 2);

  CHECK_NOTHROW(claim_shard_identity(*conn, two));  // again: a check
  CHECK_NOTHROW(claim_shard_identity(*conn, {.name = "renamed", .id = 2, .weight = 1, .conninfo = ""}));
  CHECK(read_shard_identity(*conn)->name == "renamed");
  CHECK_THROWS_AS(claim_shard_identity(*conn, {.name = "c", .id = 3, .weight = 1, .conninfo = ""}), WrongShard);
  CHECK_THROWS_WITH(claim_shard_identity(*conn, {.name = "c", .id = 3, .weight = 1, .conninfo = ""}),
                    Catch::Contains("is shard \"renamed\" (id 2), not id 3"));
  CHECK(shard_of(next_id(db)) == 2);  // the failed claims changed nothing

  CHECK_NOTHROW(require_shard_identity(*conn, group_with(two), two));
  const ShardConfig other{.name = "b", .id = 5, .weight = 1, .conninfo = db.conninfo()};
  CHECK_THROWS_WITH(require_shard_identity(*conn, group_with(other), other),
                    Catch::Contains("its database is shard \"renamed\" (id 2)"));
}

TEST_CASE("shard 0 keeps the ids a one-server database already issued") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto before = next_id(db);
  claim_shard_identity(*conn, {.name = "default", .id = 0, .weight = 1, .conninfo = ""});
  CHECK(next_id(db) == before + 1);
}

TEST_CASE("an unclaimed database is refused in a group, accepted as the one server") {
  test::TestDatabase db;
  auto conn = db.connect();
  const ShardConfig one{.name = "a", .id = 1, .weight = 1, .conninfo = db.conninfo()};
  CHECK_THROWS_WITH(require_shard_identity(*conn, group_with(one), one), Catch::Contains("run wsmtpctl db migrate"));
  DatabaseConfig single{.conninfo = db.conninfo(),
                        .shards = {{.name = "default", .id = 0, .weight = 1, .conninfo = db.conninfo()}}};
  CHECK_NOTHROW(require_shard_identity(*conn, single, single.shards[0]));
}

TEST_CASE("a database with mail outside the range is not claimed for another id") {
  test::TestDatabase db;
  auto conn = db.connect();
  db.query("INSERT INTO messages (state, envelope_from) OVERRIDING SYSTEM VALUE VALUES (0, 'a@b') RETURNING id");
  CHECK_THROWS_WITH(claim_shard_identity(*conn, {.name = "a", .id = 1, .weight = 1, .conninfo = ""}),
                    Catch::Contains("outside shard id 1's range"));
  CHECK_FALSE(read_shard_identity(*conn));
}
