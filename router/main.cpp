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
#include "pg/router_queue.h"
#include "pg/waiter.h"
#include "pg/worker_loop.h"
#include "route.h"
#include "signals.h"
#include "supervisor.h"

using namespace wsmtp;

namespace {

// The supervisor's backlog measure: its own connection, reopened after a
// failure.
class BacklogProbe {
public:
  explicit BacklogProbe(std::string conninfo)
      : conninfo_(std::move(conninfo)) {}
  std::optional<std::int64_t> operator()() {
    try {
      if (!conn_ || !conn_->is_open())
        conn_ = common::pg::connect(conninfo_);
      pqxx::read_transaction tx(*conn_);
      return common::pg::routing_backlog(tx);
    } catch (const std::exception &e) {
      if (conn_)
        log::warn("backlog query failed: {}", e.what());
      conn_.reset();
      return std::nullopt;
    }
  }

private:
  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
};

} // namespace

int main(int argc, char **argv) {
  log::set_program("wroute");
  CLI::App app{"wroute: the WSMTP router (state 1 -> 3)", "wroute"};
  common::CommonOptions options;
  bool check_only = false;
  common::add_common_options(app, options);
  app.add_flag("--check-config", check_only,
               "validate the configuration and exit");
  return common::run_main(app, argc, argv, [&] {
    auto file = common::load_config(options);
    auto db = common::read_database_config(file);
    auto queue = common::read_queue_config(file);
    auto config = router::read_router_config(file);
    if (check_only)
      return 0;
    const auto &stop = common::install_stop_signals();
    log::info("wroute supervisor starting on {}", common::host_name());
    auto worker = [&] {
      const std::string owner = common::worker_identity();
      log::info("wroute worker starting as {}", owner);
      common::pg::run_worker_loop(
          {db.conninfo, common::pg::kRouteChannel, queue.poll_interval}, stop,
          [&](pqxx::connection &conn) {
            return router::route_batch(conn, config, queue, owner);
          });
      log::info("wroute worker stopped");
      return 0;
    };
    common::SupervisorOptions supervision;
    supervision.min_workers = config.min_workers;
    supervision.max_workers = config.max_workers;
    supervision.backlog_per_worker = config.backlog_per_worker;
    supervision.idle_time = config.idle_time;
    supervision.stop_grace =
        queue.lease_time; // past it our leases expire anyway
    BacklogProbe probe(db.conninfo);
    common::run_supervisor(supervision, stop, worker,
                           [&probe] { return probe(); });
    log::info("wroute stopped");
    return 0;
  });
}
