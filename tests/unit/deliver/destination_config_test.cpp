// [deliver] per-destination limits and backoff keys: defaults below
// max_workers' default, ranges checked with the key named; and the pure
// parts of the destination gate: one verdict per destination from a pass's
// results, and deferrals pushed past a backoff.
#include <catch2/catch.hpp>

#include "config/config_file.h"
#include "deliver/config.h"
#include "deliver/destination_gate.h"
#include "deliver/local_delivery.h"

using namespace wsmtp::deliver;
using namespace std::chrono_literals;
using wsmtp::common::pg::DeliveryResult;
using wsmtp::common::pg::DeliveryStatus;
using wsmtp::common::pg::DeliveryTask;
using wsmtp::common::pg::Destination;

namespace {
DeliverConfig parse(const std::string& text) {
  return read_deliver_config(wsmtp::common::ConfigFile::parse("[deliver]\nhostname = a.b\n" + text, "t.conf"));
}
}  // namespace

TEST_CASE("[deliver] concurrency limits: defaults below four workers, 1..1000") {
  auto c = parse("");
  CHECK(c.relay_concurrency == 2);
  CHECK(c.lmtp_concurrency == 2);
  CHECK(c.maildir_concurrency == 8);
  CHECK(c.mbox_concurrency == 1);
  CHECK(c.relay_concurrency < c.scaling.max_workers);
  CHECK(concurrency_limit(c, "relay") == 2);
  CHECK(concurrency_limit(c, "mbox") == 1);
  auto set = parse("relay_concurrency = 3\nlmtp_concurrency = 4\nmaildir_concurrency = 5\nmbox_concurrency = 6\n");
  CHECK(concurrency_limit(set, "relay") == 3);
  CHECK(concurrency_limit(set, "lmtp") == 4);
  CHECK(concurrency_limit(set, "maildir") == 5);
  CHECK(concurrency_limit(set, "mbox") == 6);
  CHECK(concurrency_limit(set, "bounce") == 1);
  CHECK_THROWS_WITH(parse("relay_concurrency = 0\n"), Catch::Contains("relay_concurrency"));
  CHECK_THROWS_WITH(parse("maildir_concurrency = 1001\n"), Catch::Contains("maildir_concurrency"));
  CHECK_THROWS_WITH(parse("lmtp_concurrency = two\n"), Catch::Contains("lmtp_concurrency"));
  // Limits count every host's workers: one host's max_workers is no bound.
  CHECK(parse("max_workers = 2\nrelay_concurrency = 8\n").relay_concurrency == 8);
}

TEST_CASE("[deliver] destination backoff: after 2 failures, 30 s doubling to 1 h; checked") {
  auto c = parse("");
  CHECK(c.destination_backoff_after == 2);
  CHECK(c.destination_backoff_base == 30s);
  CHECK(c.destination_backoff_max == 3600s);
  auto set = parse("destination_backoff_after = 0\ndestination_backoff_base = 5s\ndestination_backoff_max = 5s\n");
  CHECK(set.destination_backoff_after == 0);
  CHECK(set.destination_backoff_max == 5s);
  CHECK_THROWS_WITH(parse("destination_backoff_after = -1\n"), Catch::Contains("destination_backoff_after"));
  CHECK_THROWS_WITH(parse("destination_backoff_base = 0s\n"), Catch::Contains("destination_backoff_base"));
  CHECK_THROWS_WITH(parse("destination_backoff_base = 2m\ndestination_backoff_max = 1m\n"),
                    Catch::Contains("destination_backoff_max"));
}

namespace {
DeliveryTask task(std::int64_t id, const std::string& transport, const std::string& destination) {
  DeliveryTask t;
  t.delivery_id = id;
  t.transport = transport;
  t.destination = destination;
  return t;
}
}  // namespace

TEST_CASE("verdicts: one per destination, failed if any result failed the destination") {
  std::map<std::int64_t, DeliveryTask> tasks;
  tasks[1] = task(1, "relay", "p");
  tasks[2] = task(2, "relay", "p");
  tasks[3] = task(3, "maildir", "/m/a");
  tasks[4] = task(4, "maildir", "/m/b");
  auto task_of = [&](std::int64_t id) -> const DeliveryTask& { return tasks.at(id); };
  std::vector<DeliveryResult> results = {
      {1, DeliveryStatus::delivered, "250 ok", 0s},
      {2, DeliveryStatus::deferred, "4.4.1 no relay reachable", 60s, true},
      {3, DeliveryStatus::deferred, "4.2.2 mailbox full", 60s},  // the message's (quota), not the directory's
      {4, DeliveryStatus::bounced, "5.2.3 too big", 0s},
  };
  auto verdicts = destination_verdicts(results, task_of);
  REQUIRE(verdicts.size() == 3);
  CHECK(verdicts[0].destination == Destination{"maildir", "/m/a"});
  CHECK_FALSE(verdicts[0].failed);
  CHECK_FALSE(verdicts[1].failed);
  CHECK(verdicts[2].destination == Destination{"relay", "p"});
  CHECK(verdicts[2].failed);
  CHECK(verdicts[2].error == "4.4.1 no relay reachable");

  defer_past_backoff(results, {{Destination{"relay", "p"}, 300s}, {Destination{"maildir", "/m/b"}, 300s}}, task_of);
  CHECK(results[0].retry_after == 0s);    // delivered: untouched
  CHECK(results[1].retry_after == 300s);  // deferred to the backed-off pool
  CHECK(results[2].retry_after == 60s);   // another destination
  CHECK(results[3].retry_after == 0s);    // bounced
}

TEST_CASE("a local copy's failure fails its destination only when the directory refuses every copy") {
  CHECK(fails_destination(std::system_error(EACCES, std::generic_category(), "open")));
  CHECK(fails_destination(std::system_error(ENOSPC, std::generic_category(), "write")));
  CHECK(fails_destination(std::system_error(EROFS, std::generic_category(), "mkdir")));
  CHECK_FALSE(fails_destination(std::system_error(ENOENT, std::generic_category(), "open")));
  CHECK_FALSE(fails_destination(std::runtime_error("lock timeout")));
}
