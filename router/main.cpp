// wroute: claims received messages (state 1), expands and routes their
// recipients, and writes the delivery plan (state 3). Any number of routers may
// run on any hosts; they share nothing but the database.
#include "config.h"
#include "cli.h"
#include "config/common_config.h"
#include "identity.h"
#include "log.h"
#include "pg/waiter.h"
#include "pg/worker_loop.h"
#include "route.h"
#include "signals.h"

using namespace wsmtp;

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
    const std::string owner = common::worker_identity();
    log::info("wroute starting as {}", owner);
    common::pg::run_worker_loop({db.conninfo, common::pg::kRouteChannel, queue.poll_interval}, stop,
                                [&](pqxx::connection& conn) { return router::route_batch(conn, config, queue, owner); });
    log::info("wroute stopped");
    return 0;
  });
}
