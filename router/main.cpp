// wroute: claims received messages (state 1), expands and routes their
// recipients, and writes the delivery plan (state 3). The process is a
// supervisor (common/pg/worker_pool.h) running between min_workers and
// max_workers worker processes by the backlog. Any number of routers may run
// on any hosts; they share nothing but the database.
#include <chrono>

#include "config.h"
#include "daemon.h"
#include "identity.h"
#include "log.h"
#include "db/queue.h"
#include "pg/waiter.h"
#include "pg/worker_loop.h"
#include "pg/worker_pool.h"
#include "route.h"

using namespace wsmtp;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const common::Daemon<router::RouterConfig> daemon{.name = "wroute",
                                                    .description = "wroute: the WSMTP router (state 1 -> 3)",
                                                    .read_own = router::read_router_config};
  using Config = common::DaemonConfig<router::RouterConfig>;
  return common::run_daemon(daemon, argc, argv, [](const Config& config, const std::atomic<bool>& stop) {
    const auto& router_config = config.own;
    log::info("wroute supervisor starting on {}", common::host_name());
    if (router_config.postmaster.empty())
      log::warn("[router] postmaster is not set: mail to postmaster without its own mailbox or alias will be held");
    // The schema trigger's NOTIFY stays inside the router's transactions
    // (no deferred wake-ups as in the listener): the router's commits do not
    // wait for the WAL flush (configure_router_session), so that lock is
    // held only briefly, and it also wakes routers for the reports and
    // auto-replies the router queues.
    // Routing waits on nothing but the database, so a router silent for a
    // whole lease time is wedged: its leases then run out.
    common::pg::run_worker_pool({.program = "wroute",
                                 .channel = common::pg::kRouteChannel,
                                 .batch_size = router_config.batch_size,
                                 .scaling = router_config.scaling,
                                 .stall_limit = config.queue.lease_time,
                                 .backlog = [](pqxx::transaction_base& tx) { return common::pg::routing_backlog(tx); }},
                                config.database, config.queue, stop,
                                [&](const std::string& owner, common::pg::LeaseKeeper& keeper,
                                    const common::ShardConfig& /*shard*/) -> common::pg::WorkerStep {
                                  return [&, owner, reclaim = common::pg::Cadence(1s)](pqxx::connection& conn) mutable {
                                    return router::route_batch(conn, router_config, config.queue, owner, keeper,
                                                               reclaim.due());
                                  };
                                });
    return std::optional<int>();  // stopped: the daemon's signal says whether to reload
  });
}
