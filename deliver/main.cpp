// wdeliver: claims routed messages (state 3) with deliveries on the transports it
// serves, delivers them (Maildir, mbox, relay pools, LMTP), and finishes them (state 5) or returns
// them for a later retry (state 3).
#include "cli.h"
#include "config.h"
#include "config/common_config.h"
#include "deliver.h"
#include "identity.h"
#include "log.h"
#include "pg/backlog_probe.h"
#include "pg/lease_keeper.h"
#include "pg/waiter.h"
#include "pg/worker_loop.h"
#include "signals.h"
#include "supervisor.h"
#include "transport_registry.h"

using namespace wsmtp;

int main(int argc, char** argv) {
  log::set_program("wdeliver");
  CLI::App app{"wdeliver: the WSMTP delivery agent (state 3 -> 5)", "wdeliver"};
  common::CommonOptions options;
  bool check_only = false;
  common::add_common_options(app, options);
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  return common::run_main(app, argc, argv, [&] {
    auto file = common::load_config(options);
    auto db = common::read_database_config(file);
    auto queue = common::read_queue_config(file);
    auto config = deliver::read_deliver_config(file);
    if (check_only) return 0;
    const auto& stop = common::install_stop_signals();
    const std::string host = common::host_name();
    log::info("wdeliver supervisor starting on {} for transports {}", host, fmt::join(config.transports, ","));
    // Each worker is a forked process with its own identity, connections and relay sessions.
    auto worker = [&] {
      const std::string owner = common::worker_identity();
      log::info("wdeliver worker starting as {}", owner);
      // Renews the leases of the batch in hand from a thread of its own, while
      // the worker shows progress within its own timeouts.
      common::pg::LeaseKeeper keeper({.conninfo = db.conninfo,
                                      .lease_time = queue.lease_time,
                                      .stall_limit = deliver::longest_quiet_step(config)});
      deliver::Deliverer deliverer(config, queue, owner, keeper,
                                   deliver::standard_transports(config, host, [&keeper] { keeper.progress(); }));
      common::pg::run_worker_loop({.conninfo = db.conninfo,
                                   .channel = common::pg::kDeliverChannel,
                                   .poll_interval = queue.poll_interval,
                                   .batch_size = config.batch_size,
                                   .gather_time = queue.gather_time},
                                  stop, [&](pqxx::connection& conn) { return deliverer.run_batch(conn); });
      log::info("wdeliver worker stopped");
      return 0;
    };
    common::pg::BacklogProbe probe(db.conninfo, [&config](pqxx::transaction_base& tx) {
      return common::pg::delivery_backlog(tx, config.transports);
    });
    common::supervise_until_stopped(
        config.scaling, queue.lease_time, stop, worker, [&probe] { return probe(); }, argv,
        [&] {
          auto next = common::load_config(options);
          common::read_database_config(next);
          common::read_queue_config(next);
          deliver::read_deliver_config(next);
        });
    log::info("wdeliver stopped");
    return 0;
  });
}
