// The batch loop's per-destination rules against a real PostgreSQL with fake
// transports: a destination whose slots another worker holds is left pending
// (no attempt); one remote destination runs per batch, after the rest of the
// batch is finished and committed, the other remote groups left pending;
// a destination-level failure backs the destination off and pushes its
// deferrals past the backoff; a success clears it.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "db/destinations.h"
#include "deliver.h"
#include "destination_gate.h"
#include "pg/body.h"
#include "pg/lease_keeper.h"
#include "pg/transitions.h"
#include "directory_links.h"
#include "test_database.h"
#include "transport.h"
#include "transport_registry.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;

namespace {

const char* kBody = "From: s@x.org\r\nSubject: gate\r\n\r\nbody\r\n";

std::int64_t routed(pqxx::connection& conn, const std::string& rcpt, const std::string& transport,
                    const std::string& dest) {
  std::int64_t id = 0;
  {
    pqxx::work tx(conn);
    id = create_message(tx, {"s@x.org", "192.0.2.7", "client.example", "test", {rcpt}});
    append_body_chunk(tx, id, 0, kBody);
    REQUIRE(commit_received(tx, id, static_cast<std::int64_t>(std::string(kBody).size())));
    tx.commit();
  }
  auto routing = claim_for_routing(conn, {.owner = "router", .lease_time = 60s, .limit = 1, .max_expired_claims = 5});
  REQUIRE(routing.size() == 1);
  PlannedDelivery p;
  p.recipient = p.original_rcpt = rcpt;
  p.transport = transport;
  p.destination = dest;
  pqxx::work tx(conn);
  REQUIRE(finish_routing(tx, routing[0].lease, {p}));
  tx.commit();
  return id;
}

// Delivers "ok..." recipients and fails the destination for any other. Records
// each call's key and, for a remote call, the state of message `watched` then.
class Fake : public deliver::Transport {
 public:
  Fake(bool remote, std::vector<std::string>& calls, test::TestDatabase& db, std::int64_t& watched, int& watched_state)
      : remote_(remote), calls_(calls), db_(db), watched_(watched), watched_state_(watched_state) {}
  std::string destination_key(const DeliveryTask& task) const override { return task.destination; }
  bool shares_transactions() const override { return true; }
  bool remote() const override { return remote_; }
  std::vector<DeliveryResult> deliver(pqxx::connection&, common::pg::DirectoryLink&, const std::string& key,
                                      const std::vector<deliver::DeliveryJob>& jobs,
                                      const deliver::MayStart&) override {
    calls_.push_back(key);
    if (remote_ && watched_)
      watched_state_ = db_.query("SELECT state FROM messages WHERE id = " + std::to_string(watched_))[0][0].as<int>();
    std::vector<DeliveryResult> out;
    for (const auto& job : jobs)
      for (const auto* task : job.tasks) {
        if (task->recipient.rfind("ok", 0) == 0)
          out.push_back({task->delivery_id, DeliveryStatus::delivered, "took it", 0s});
        else
          out.push_back({task->delivery_id, DeliveryStatus::deferred, "4.4.1 unreachable", 2s, true});
      }
    return out;
  }

 private:
  bool remote_;
  std::vector<std::string>& calls_;
  test::TestDatabase& db_;
  std::int64_t& watched_;
  int& watched_state_;
};

struct Rig {
  test::TestDatabase& db;
  deliver::DeliverConfig config;
  common::QueueConfig queue;
  common::pg::LeaseKeeper keeper;
  std::vector<std::string> calls;
  std::int64_t watched = 0;
  int watched_state = -1;
  std::unique_ptr<deliver::Deliverer> deliverer;

  explicit Rig(test::TestDatabase& database)
      : db(database), keeper({.conninfo = database.conninfo(), .lease_time = 60s, .stall_limit = 60s}) {
    config.transports = {"maildir", "relay"};
    config.hostname = "mx.example.test";
    config.destination_backoff_after = 1;
    config.maildir_concurrency = 2;
    config.destination_backoff_base = 300s;
    deliver::TransportRegistry transports;
    transports.add("maildir", std::make_unique<Fake>(false, calls, db, watched, watched_state));
    transports.add("relay", std::make_unique<Fake>(true, calls, db, watched, watched_state));
    deliverer = std::make_unique<deliver::Deliverer>(config, queue, "worker-1", keeper, std::move(transports),
                                                     test::one_server_link(database.conninfo()));
  }
};

std::string status_and_attempts(test::TestDatabase& db, std::int64_t id) {
  auto row = db.query("SELECT status || '/' || attempts FROM deliveries WHERE message_id = " + std::to_string(id));
  return row[0][0].as<std::string>();
}

int state_of(test::TestDatabase& db, std::int64_t id) {
  return db.query("SELECT state FROM messages WHERE id = " + std::to_string(id))[0][0].as<int>();
}

}  // namespace

TEST_CASE("one remote destination per batch, after the rest is committed; busy destinations left untried") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto to_pool1 = routed(*conn, "ok-1@y.org", "relay", "pool1");
  auto local = routed(*conn, "ok-a@x.test", "maildir", "/m/a");
  auto to_pool2 = routed(*conn, "ok-2@y.org", "relay", "pool2");
  auto busy = routed(*conn, "ok-b@x.test", "maildir", "/m/busy");
  // Other workers hold every slot of /m/busy (the rig's limit of 2): the claim
  // passes over its message.
  auto other = db.connect();
  auto other2 = db.connect();
  REQUIRE(acquire_destination_slots(*other, {{{"maildir", "/m/busy"}, 2}}).size() == 1);
  REQUIRE(acquire_destination_slots(*other2, {{{"maildir", "/m/busy"}, 2}}).size() == 1);
  Rig rig(db);
  rig.watched = local;
  REQUIRE(rig.deliverer->run_batch(*conn) == 3);
  CHECK(rig.calls == std::vector<std::string>{"/m/a", "pool1"});
  CHECK(rig.watched_state == 5);  // the Maildir copy was finished before pool1 started
  CHECK(state_of(db, to_pool1) == 5);
  CHECK(state_of(db, local) == 5);
  CHECK(state_of(db, to_pool2) == 3);  // the other remote group waits for the next claim
  CHECK(status_and_attempts(db, to_pool2) == "pending/0");
  CHECK(state_of(db, busy) == 3);  // not claimed: its destination was saturated
  CHECK(status_and_attempts(db, busy) == "pending/0");
  // The slots taken were released: the next batch gets pool2.
  CHECK(db.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()")[0][0]
            .as<int>() == 2);
  rig.calls.clear();
  REQUIRE(rig.deliverer->run_batch(*conn) == 1);
  CHECK(rig.calls == std::vector<std::string>{"pool2"});
  CHECK(state_of(db, to_pool2) == 5);
  other.reset();
  for (int i = 0; i < 50 && db.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0].as<int>() > 1;
       ++i)
    std::this_thread::sleep_for(20ms);
  rig.calls.clear();
  REQUIRE(rig.deliverer->run_batch(*conn) == 1);
  CHECK(rig.calls == std::vector<std::string>{"/m/busy"});
}

TEST_CASE("a claimed message whose destination has no free slot is returned without an attempt") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = routed(*conn, "ok-c@x.test", "maildir", "/m/c");
  Rig rig(db);
  // Claimed first, then the other workers take every slot before this
  // batch asks for one (the race the claim's filter cannot close).
  auto claims =
      claim_for_delivery(*conn, {.owner = "w", .lease_time = 60s, .limit = 10, .max_expired_claims = 5}, {"maildir"});
  REQUIRE(claims.size() == 1);
  auto holder1 = db.connect();
  auto holder2 = db.connect();
  REQUIRE(acquire_destination_slots(*holder1, {{{"maildir", "/m/c"}, 2}}).size() == 1);
  REQUIRE(acquire_destination_slots(*holder2, {{{"maildir", "/m/c"}, 2}}).size() == 1);
  deliver::DestinationGate gate(*conn, claims, [](const std::string&) { return 2; });
  CHECK(gate.held() == 0);
  CHECK_FALSE(gate.admits(claims[0].tasks[0]));
  pqxx::work tx(*conn);
  CHECK(finish_delivery(tx, claims[0].lease, {}) == FinishOutcome::deferred);
  tx.commit();
  CHECK(status_and_attempts(db, id) == "pending/0");
  CHECK(state_of(db, id) == 3);
}

TEST_CASE("a destination failing as a whole is backed off, its deferrals pushed past it") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto down = routed(*conn, "down-1@y.org", "relay", "dead");
  Rig rig(db);
  REQUIRE(rig.deliverer->run_batch(*conn) == 1);
  CHECK(status_and_attempts(db, down) == "pending/1");
  // backoff_after 1, base 300 s: the 2 s retry becomes the backoff's end.
  CHECK(db.query("SELECT count(*) FROM destination_backoff WHERE transport = 'relay' AND destination = 'dead' "
                 "AND failures = 1 AND backoff_until > now() + interval '290 seconds'")[0][0]
            .as<int>() == 1);
  CHECK(db.query("SELECT count(*) FROM deliveries d, destination_backoff b WHERE d.message_id = " +
                 std::to_string(down) + " AND d.next_attempt_at >= b.backoff_until - interval '1 second'")[0][0]
            .as<int>() == 1);
  // Due again by hand: still not claimed while the destination is backed off.
  db.query("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'");
  db.query("UPDATE messages SET next_attempt_at = now() - interval '1 second'");
  CHECK(rig.deliverer->run_batch(*conn) == 0);
  // Backoff over and the pool answering: delivered, and the backoff cleared.
  db.query("UPDATE destination_backoff SET backoff_until = now() - interval '1 second'");
  db.query("UPDATE deliveries SET recipient = 'ok-1@y.org'");
  CHECK(rig.deliverer->run_batch(*conn) == 1);
  CHECK(state_of(db, down) == 5);
  CHECK(db.query("SELECT count(*) FROM destination_backoff")[0][0].as<int>() == 0);
}
