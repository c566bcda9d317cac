// The listener's stores on a group of two queue shards (two real databases):
// each store keeps to its shard (ids in the shard's range, rows only there),
// refuses a database that is another shard's, reports a lost connection, and
// resolves an in-doubt commit by asking its own shard.
#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "listener/db/message_store.h"
#include "listener/db/wakeup.h"
#include "pg/shards.h"
#include "queue_id.h"
#include "test_database.h"

using namespace wsmtp;

namespace {

std::string listener_conninfo(test::TestDatabase& db) {
  db.query(
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't_wsmtp_listener') THEN "
      "CREATE ROLE t_wsmtp_listener LOGIN IN ROLE wsmtp_listener; END IF; END $$");
  return db.conninfo() + " user=t_wsmtp_listener";
}

// Two claimed shards, q1 and q2, and the group's configuration (the directory
// is a third database no store here uses).
struct Group {
  Group() {
    for (auto* db : {&one, &two}) listener_conninfo(*db);
    config.conninfo = "dbname=wsmtp_directory_unused";
    config.shards = {{.name = "q1", .id = 1, .weight = 1, .conninfo = listener_conninfo(one)},
                     {.name = "q2", .id = 2, .weight = 1, .conninfo = listener_conninfo(two)}};
    common::pg::claim_shard_identity(*one.connect(), config.shards[0]);
    common::pg::claim_shard_identity(*two.connect(), config.shards[1]);
  }
  test::TestDatabase one, two;
  common::DatabaseConfig config;
};

struct Reports {
  std::mutex mutex;
  std::vector<std::pair<std::string, bool>> lost;
  common::pg::ShardLost hook() {
    return [this](const std::string& why, bool wrong) {
      std::lock_guard lock(mutex);
      lost.emplace_back(why, wrong);
    };
  }
};

std::unique_ptr<common::Store> store_on(const common::DatabaseConfig& config, const common::ShardConfig& shard,
                                        Reports& reports, std::shared_ptr<common::pg::ShardEpoch> epoch = nullptr) {
  return common::pg::make_shard_store(config, shard, std::make_shared<common::pg::WakeupSender>(shard.conninfo),
                                      reports.hook(), std::move(epoch));
}

common::CompleteMessage message(std::int64_t id) {
  return {{"a@example.org", "192.0.2.7", "client.example", "mx1", {"x@example.test"}}, "Subject: s\r\n\r\nx\r\n", id};
}

std::size_t count(test::TestDatabase& db, std::int64_t id) {
  return db.query(fmt::format("SELECT count(*) FROM messages WHERE id = {} AND state >= 1", id))[0][0]
      .as<std::size_t>();
}

// Cuts the connection of the stores whose conninfo carries application_name=name.
void terminate(test::TestDatabase& db, const std::string& name) {
  db.query(fmt::format("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'", name));
}

}  // namespace

TEST_CASE("each shard's store issues ids in its range and stores mail only there") {
  Group g;
  Reports reports;
  auto q1 = store_on(g.config, g.config.shards[0], reports);
  auto q2 = store_on(g.config, g.config.shards[1], reports);
  auto id1 = q1->reserve_message_ids(1).at(0);
  auto id2 = q2->reserve_message_ids(1).at(0);
  CHECK(common::shard_of(id1) == 1);
  CHECK(common::shard_of(id2) == 2);
  q1->store_messages({message(id1)});
  q2->store_messages({message(id2)});
  CHECK(count(g.one, id1) == 1);
  CHECK(count(g.two, id1) == 0);
  CHECK(count(g.two, id2) == 1);
  CHECK(count(g.one, id2) == 0);
  CHECK(reports.lost.empty());
}

TEST_CASE("a store refuses a database that is another shard's, and reports it") {
  Group g;
  Reports reports;
  auto misdirected = g.config.shards[1];
  misdirected.conninfo = g.config.shards[0].conninfo;  // says q2, reaches q1's database
  auto store = store_on(g.config, misdirected, reports);
  CHECK_THROWS_AS(store->reserve_message_ids(1), common::pg::WrongShard);
  REQUIRE(reports.lost.size() == 1);
  CHECK(reports.lost[0].second);
  CHECK_THAT(reports.lost[0].first, Catch::Contains("its database is shard \"q1\""));
  CHECK(g.one.query("SELECT count(*) FROM messages")[0][0].as<int>() == 0);

  bool wrong = false;
  CHECK(common::pg::check_shard(g.config, g.config.shards[1], wrong).empty());
  CHECK_FALSE(wrong);
  CHECK_THAT(common::pg::check_shard(g.config, misdirected, wrong), Catch::Contains("its database is shard"));
  CHECK(wrong);
  auto unreachable = g.config.shards[1];
  unreachable.conninfo = "host=127.0.0.1 port=1 dbname=nothing connect_timeout=2";
  CHECK_FALSE(common::pg::check_shard(g.config, unreachable, wrong).empty());
  CHECK_FALSE(wrong);
}

TEST_CASE("a lost connection is reported, and the next call connects again") {
  Group g;
  Reports reports;
  auto shard = g.config.shards[0];
  shard.conninfo += " application_name=victim";
  auto store = store_on(g.config, shard, reports);
  store->reserve_message_ids(1);
  terminate(g.one, "victim");
  CHECK_THROWS(store->reserve_message_ids(1));
  REQUIRE(reports.lost.size() >= 1);
  CHECK_FALSE(reports.lost[0].second);
  CHECK(common::shard_of(store->reserve_message_ids(1).at(0)) == 1);
}

TEST_CASE("after one store of a shard lost its connection, the others connect again before their next statement") {
  Group g;
  Reports reports;
  auto epoch = std::make_shared<common::pg::ShardEpoch>();
  auto shard = g.config.shards[0];
  shard.conninfo += " application_name=stale";
  auto first = store_on(g.config, shard, reports, epoch);
  auto second = store_on(g.config, shard, reports, epoch);
  first->reserve_message_ids(1);
  second->reserve_message_ids(1);
  terminate(g.one, "stale");  // both connections cut (a restart, an outage)
  CHECK_THROWS(first->reserve_message_ids(1));
  REQUIRE(reports.lost.size() == 1);
  // The second store's connection is as dead, but it does not fail a message to find out.
  auto id = second->reserve_message_ids(1).at(0);
  CHECK_NOTHROW(second->store_messages({message(id)}));
  CHECK(count(g.one, id) == 1);
  CHECK(reports.lost.size() == 1);
}

TEST_CASE("an in-doubt group commit is resolved by asking the message's own shard") {
  Group g;
  Reports reports;
  auto q1 = store_on(g.config, g.config.shards[0], reports);
  auto id = q1->reserve_message_ids(1).at(0);
  q1->store_messages({message(id)});  // committed on q1

  // A second store on q1 loses its connection under the same batch: the
  // duplicate insert never runs, the question "committed?" goes to q1: yes.
  auto shard1 = g.config.shards[0];
  shard1.conninfo += " application_name=doubt_q1";
  auto again = store_on(g.config, shard1, reports);
  again->reserve_message_ids(1);
  terminate(g.one, "doubt_q1");
  CHECK_NOTHROW(again->store_messages({message(id)}));

  // The same question asked of q2 (where the id is not) is answered "not
  // committed": the client would get 451, never a 250 for mail q2 lacks.
  auto shard2 = g.config.shards[1];
  shard2.conninfo += " application_name=doubt_q2";
  auto other = store_on(g.config, shard2, reports);
  other->reserve_message_ids(1);
  terminate(g.two, "doubt_q2");
  CHECK_THROWS(other->store_messages({message(id)}));
  CHECK(count(g.two, id) == 0);
}
