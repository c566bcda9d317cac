// Batched routing against a real PostgreSQL: a batch is one transaction, a
// message whose plan fails is routed again alone (its own rows roll back, the
// others go through), and the batch's 2->3 move is a compare-and-set per lease.
#include <chrono>

#include "ctl/db/routing_admin.h"
#include "router_support.h"

using namespace wsmtp;
using namespace wsmtp::test;
using namespace std::chrono_literals;

namespace {

std::string id_s(std::int64_t id) { return std::to_string(id); }

}  // namespace

TEST_CASE("one bad message in a batch does not hold the others, and leaves no partial plan") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "bo", "owner"});
  {
    pqxx::work tx(*conn);
    common::pg::add_list(tx, {"team@example.org", "owner@example.org", "", common::PostingPolicy::anyone, "", "", ""});
    common::pg::add_list_member(tx, "team@example.org", "bo@example.org");
    common::pg::add_list_member(tx, "team@example.org", "poison@remote.example");
    tx.commit();
  }
  // Fails in the last statement of the batch (the list fan-out), after the
  // plans of every message were already inserted.
  db.query(
      "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "IF NEW.recipient = 'poison@remote.example' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$; "
      "CREATE TRIGGER poison BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION poison()");
  std::vector<std::int64_t> good;
  for (int i = 0; i < 4; ++i)
    good.push_back(receive(*conn, "s" + std::to_string(i) + "@remote.example", {"ann@example.org"}));
  auto bad = receive(*conn, "x@remote.example", {"ann@example.org", "team@example.org"});
  for (int i = 4; i < 9; ++i)
    good.push_back(receive(*conn, "s" + std::to_string(i) + "@remote.example", {"bo@example.org"}));
  router::RouterConfig config;
  config.batch_size = 20;
  common::QueueConfig queue;
  queue.lease_time = 60s;
  common::pg::LeaseKeeper keeper(
      {.conninfo = db.conninfo(), .lease_time = queue.lease_time, .stall_limit = queue.lease_time});
  auto link = one_server_link(*conn);
  CHECK(router::route_batch(*conn, link, config, queue, "router-test", keeper) == 10);
  for (auto id : good) {
    CHECK(count(db, "SELECT state FROM messages WHERE id = " + id_s(id)) == 3);
    CHECK(count(db, "SELECT routing_failures FROM messages WHERE id = " + id_s(id)) == 0);
    CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(id)) == 1);
  }
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + id_s(bad)) == 2);
  CHECK(count(db, "SELECT routing_failures FROM messages WHERE id = " + id_s(bad)) == 1);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + id_s(bad)) == 0);  // not even ann's row
}

TEST_CASE("finishing a batch moves only the messages whose lease is still ours") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann"});
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(receive(*conn, "s@remote.example", {"ann@example.org"}));
  auto claims = common::pg::claim_for_routing(
      *conn, {.owner = "slow-router", .lease_time = 60s, .limit = 10, .max_expired_claims = 5});
  REQUIRE(claims.size() == 3);
  // Another router took the second message after our lease expired.
  db.query("UPDATE messages SET lease_token = gen_random_uuid(), lease_owner = 'fast-router' WHERE id = " +
           id_s(claims[1].lease.msg_id));
  std::vector<common::pg::RoutingPlan> plans;
  for (const auto& c : claims)
    plans.push_back({c.lease, {{"ann@example.org", "ann@example.org", "maildir", "/m/ann", std::nullopt}}, {}});
  pqxx::work tx(*conn);
  auto routed = common::pg::finish_routing(tx, plans);
  tx.commit();
  REQUIRE(routed.size() == 2);
  CHECK(routed[0].msg_id == claims[0].lease.msg_id);
  CHECK(routed[0].deliveries == 1);
  CHECK(routed[1].msg_id == claims[2].lease.msg_id);
  const std::string stolen = id_s(claims[1].lease.msg_id);
  CHECK(count(db, "SELECT state FROM messages WHERE id = " + stolen) == 2);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE message_id = " + stolen) == 0);
  CHECK(count(db, "SELECT count(*) FROM messages WHERE state = 3") == 2);
}

TEST_CASE("a batch of messages with aliases, remote and unknown recipients routes like single messages") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "bo", "cy"});
  {
    pqxx::work tx(*conn);
    common::pg::add_alias(tx, "staff@example.org", "example.org", "bo@example.org");
    common::pg::add_alias(tx, "staff@example.org", "example.org", "cy@example.org");
    tx.commit();
  }
  for (int i = 0; i < 25; ++i)
    receive(*conn, "s" + std::to_string(i) + "@remote.example",
            {"ann@example.org", "staff@example.org", "far@remote.example", "nobody@example.org"});
  router::RouterConfig config;
  config.batch_size = 25;
  CHECK(route_all(*conn, config) == 25);
  CHECK(count(db, "SELECT count(*) FROM messages WHERE state = 3") == 25);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE status = 'pending'") == 25 * 4);
  CHECK(count(db, "SELECT count(*) FROM deliveries WHERE status = 'bounced' AND recipient = 'nobody@example.org'") ==
        25);
}
