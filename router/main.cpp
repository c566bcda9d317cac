// wroute: claims received messages (state 1), expands and routes their
// recipients, and writes the delivery plan (state 3). The process is a
// supervisor (common/supervisor.h) running between min_workers and
// max_workers worker processes by the backlog. Any number of routers may run
// on any hosts; they share nothing but the database.
#include <memory>

#include "cli.h"
#include "config.h"
#include "config/common_config.h"
#include "identity.h"
#include "log.h"
#include "pg/connection.h"
#include "pg/lease_keeper.h"
#include "db/queue.h"
#include "pg/waiter.h"
#include "pg/worker_loop.h"
#include "route.h"
#include "signals.h"
#include "pg/backlog_probe.h"
#include "supervisor.h"

using namespace wsmtp;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  log::set_program("wroute");
  CLI::App app{"wroute: the WSMTP router (state 1 -> 3)", "wroute"};
  common::CommonOptions options;
  bool check_only = false;
  common::add_common_options(app, options);
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  return common::run_main(app, argc, argv, [&] {
    auto file = common::load_config(options);
    auto db = common::read_database_config(file);
    auto queue = common::read_queue_config(file);
    auto config = router::read_router_config(file);
    if (check_only) return 0;
    const auto& stop = common::install_stop_signals();
    log::info("wroute supervisor starting on {}", common::host_name());
    if (config.postmaster.empty())
      log::warn("[router] postmaster is not set: mail to postmaster without its own mailbox or alias will be held");
    auto worker = [&] {
      const std::string owner = common::worker_identity();
      log::info("wroute worker starting as {}", owner);
      // The schema trigger's NOTIFY stays inside the router's transactions
      // (no deferred wake-ups as in the listener): the router's commits do not
      // wait for the WAL flush (configure_router_session), so that lock is
      // held only briefly, and it also wakes routers for the reports and
      // auto-replies the router queues.
      // Routing waits on nothing but the database, so a router silent for a
      // whole lease time is wedged: its leases then run out.
      common::pg::LeaseKeeper keeper(
          {.conninfo = db.conninfo, .lease_time = queue.lease_time, .stall_limit = queue.lease_time});
      common::pg::run_worker_loop({.conninfo = db.conninfo,
                                   .channel = common::pg::kRouteChannel,
                                   .poll_interval = queue.poll_interval,
                                   .batch_size = config.batch_size,
                                   .gather_time = queue.gather_time},
                                  stop, [&, reclaim = common::pg::Cadence(1s)](pqxx::connection& conn) mutable {
                                    return router::route_batch(conn, config, queue, owner, keeper, reclaim.due());
                                  });
      log::info("wroute worker stopped");
      return 0;
    };
    common::pg::BacklogProbe probe(db.conninfo,
                                   [](pqxx::transaction_base& tx) { return common::pg::routing_backlog(tx); });
    common::supervise_until_stopped(config.scaling, queue.lease_time, stop, worker, [&probe] { return probe(); }, argv,
                                    [&] {
                                      auto next = common::load_config(options);
                                      common::read_database_config(next);
                                      common::read_queue_config(next);
                                      router::read_router_config(next);
                                    });
    log::info("wroute stopped");
    return 0;
  });
}
