// The deliverer's batch loop against a real PostgreSQL with fake transports:
// it groups claimed deliveries per transport and destination (one job per
// message for transports that share transactions, one per task otherwise),
// dispatches local transports before remote ones, defers a delivery on a
// transport nobody serves, and finishes each delivery with its own outcome
// (delivered, deferred with reason, bounced with reason) through the state
// machine.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "deliver.h"
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

const char* kBody = "From: s@x.org\r\nSubject: dispatch\r\n\r\nbody\r\n";

PlannedDelivery plan(const std::string& rcpt, const std::string& transport, const std::string& dest) {
  PlannedDelivery p;
  p.recipient = rcpt;
  p.original_rcpt = rcpt;
  p.transport = transport;
  p.destination = dest;
  return p;
}

std::int64_t routed(pqxx::connection& conn, const std::vector<PlannedDelivery>& deliveries) {
  std::int64_t id = 0;
  {
    pqxx::work tx(conn);
    std::vector<std::string> rcpts;
    for (const auto& p : deliveries) rcpts.push_back(p.original_rcpt);
    id = create_message(tx, {"s@x.org", "192.0.2.7", "client.example", "test", rcpts});
    append_body_chunk(tx, id, 0, kBody);
    REQUIRE(commit_received(tx, id, static_cast<std::int64_t>(std::string(kBody).size())));
    tx.commit();
  }
  auto routing = claim_for_routing(conn, {.owner = "router", .lease_time = 60s, .limit = 1, .max_expired_claims = 5});
  REQUIRE(routing.size() == 1);
  pqxx::work tx(conn);
  REQUIRE(finish_routing(tx, routing[0].lease, deliveries));
  tx.commit();
  return id;
}

// What a transport was handed: per deliver() call its key and, per job, the
// job's message and recipients.
struct Call {
  std::string transport;
  std::string key;
  std::vector<std::pair<std::int64_t, std::vector<std::string>>> jobs;
};

// Answers by recipient: "ok..." delivered, "later..." deferred, "no..." bounced.
class FakeTransport : public deliver::Transport {
 public:
  FakeTransport(std::string name, bool shares, std::vector<Call>& calls)
      : name_(std::move(name)), shares_(shares), calls_(calls) {}
  std::string destination_key(const DeliveryTask& task) const override { return task.destination; }
  bool shares_transactions() const override { return shares_; }
  std::vector<DeliveryResult> deliver(pqxx::connection&, common::pg::DirectoryLink&, const std::string& key,
                                      const std::vector<deliver::DeliveryJob>& jobs,
                                      const deliver::MayStart& may_start) override {
    Call call{name_, key, {}};
    std::vector<DeliveryResult> out;
    for (const auto& job : jobs) {
      if (!may_start(job)) continue;
      call.jobs.push_back({job.claim->lease.msg_id, {}});
      for (const auto* task : job.tasks) {
        call.jobs.back().second.push_back(task->recipient);
        const auto& r = task->recipient;
        if (r.rfind("ok", 0) == 0)
          out.push_back({task->delivery_id, DeliveryStatus::delivered, name_ + " took " + r, 0s});
        else if (r.rfind("later", 0) == 0)
          out.push_back({task->delivery_id, DeliveryStatus::deferred, "4.2.2 " + r + " is full", 90s});
        else
          out.push_back({task->delivery_id, DeliveryStatus::bounced, "5.1.1 " + r + " unknown", 0s});
      }
    }
    calls_.push_back(std::move(call));
    return out;
  }

 private:
  std::string name_;
  bool shares_;
  std::vector<Call>& calls_;
};

// status, last_error (or "") and attempts of the delivery to rcpt.
std::tuple<std::string, std::string, int> delivery(test::TestDatabase& db, const std::string& rcpt) {
  auto rows =
      db.query("SELECT status, coalesce(last_error, ''), attempts FROM deliveries WHERE recipient = '" + rcpt + "'");
  REQUIRE(rows.size() == 1);
  return {rows[0][0].as<std::string>(), rows[0][1].as<std::string>(), rows[0][2].as<int>()};
}

int state_of(test::TestDatabase& db, std::int64_t id) {
  return db.query("SELECT state FROM messages WHERE id = " + std::to_string(id))[0][0].as<int>();
}

}  // namespace

TEST_CASE("the batch loop groups, dispatches and finishes each delivery with its transport's outcome") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto first = routed(*conn, {plan("ok-a1@x.test", "maildir", "/m/a1"), plan("later-a2@x.test", "maildir", "/m/a2"),
                              plan("ok-r1@y.org", "relay", "pool1"), plan("no-r2@y.org", "relay", "pool1")});
  auto second = routed(*conn, {plan("ok-r3@y.org", "relay", "pool2"), plan("ok-r4@y.org", "relay", "pool1")});
  auto third = routed(*conn, {plan("ok-m1@x.test", "mbox", "/var/mail/m1")});

  deliver::DeliverConfig config;
  config.transports = {"maildir", "relay", "mbox"};  // mbox claimed, but served by nobody below
  config.hostname = "mx.example.test";
  common::QueueConfig queue;
  common::pg::LeaseKeeper keeper({.conninfo = db.conninfo(), .lease_time = 60s, .stall_limit = 60s});
  std::vector<Call> calls;
  deliver::TransportRegistry transports;
  transports.add("maildir", std::make_unique<FakeTransport>("maildir", false, calls));
  transports.add("relay", std::make_unique<FakeTransport>("relay", true, calls));
  deliver::Deliverer deliverer(config, queue, "worker-1", keeper, std::move(transports),
                               test::one_server_link(db.conninfo()));

  REQUIRE(deliverer.run_batch(*conn) == 3);

  // Local first: one job per task; then one call per relay pool, one job
  // (one transaction) per message.
  REQUIRE(calls.size() == 4);
  CHECK(calls[0].transport == "maildir");
  CHECK(calls[0].key == "/m/a1");
  CHECK(calls[1].key == "/m/a2");
  CHECK(calls[2].transport == "relay");
  CHECK(calls[2].key == "pool1");
  REQUIRE(calls[2].jobs.size() == 2);
  CHECK(calls[2].jobs[0] == std::pair<std::int64_t, std::vector<std::string>>{first, {"ok-r1@y.org", "no-r2@y.org"}});
  CHECK(calls[2].jobs[1] == std::pair<std::int64_t, std::vector<std::string>>{second, {"ok-r4@y.org"}});
  CHECK(calls[3].key == "pool2");

  CHECK(std::get<0>(delivery(db, "ok-a1@x.test")) == "delivered");
  CHECK(std::get<0>(delivery(db, "later-a2@x.test")) == "pending");
  CHECK(std::get<1>(delivery(db, "later-a2@x.test")) == "4.2.2 later-a2@x.test is full");
  CHECK(std::get<2>(delivery(db, "later-a2@x.test")) == 1);
  CHECK(std::get<0>(delivery(db, "ok-r1@y.org")) == "delivered");
  CHECK(std::get<0>(delivery(db, "no-r2@y.org")) == "bounced");
  CHECK(std::get<1>(delivery(db, "no-r2@y.org")) == "5.1.1 no-r2@y.org unknown");
  CHECK(std::get<0>(delivery(db, "ok-r3@y.org")) == "delivered");
  CHECK(std::get<0>(delivery(db, "ok-r4@y.org")) == "delivered");
  CHECK(std::get<0>(delivery(db, "ok-m1@x.test")) == "pending");
  CHECK(std::get<1>(delivery(db, "ok-m1@x.test")) == "no agent for transport mbox");

  CHECK(state_of(db, first) == 3);  // one delivery deferred
  CHECK(state_of(db, second) == 5);
  CHECK(state_of(db, third) == 3);
  CHECK(db.query("SELECT 1 FROM messages WHERE id = " + std::to_string(first) +
                 " AND next_attempt_at > now() + interval '60 seconds'")
            .size() == 1);
}
