// wreaper: housekeeping for the queue. Returns expired leases, holds crash loops,
// deletes aborted receipts and expired finished messages, every `interval`.
#include <thread>

#include "cli.h"
#include "reap/reaper_config.h"
#include "config/common_config.h"
#include "log.h"
#include "pg/connection.h"
#include "pg/migrate.h"
#include "reap/reap_pass.h"
#include "signals.h"

using namespace wsmtp;

int main(int argc, char** argv) {
  log::set_program("wreaper");
  CLI::App app{"wreaper: the WSMTP queue reaper", "wreaper"};
  common::CommonOptions options;
  bool check_only = false, once = false;
  common::add_common_options(app, options);
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  app.add_flag("--once", once, "run one pass and exit");
  return common::run_main(app, argc, argv, [&] {
    auto file = common::load_config(options);
    auto db = common::read_database_config(file);
    auto queue = common::read_queue_config(file);
    auto config = common::reap::read_reaper_config(file);
    if (check_only) return 0;
    const auto& stop = common::install_stop_signals();
    std::unique_ptr<pqxx::connection> conn;
    do {
      while (!stop) {
        try {
          if (!conn || !conn->is_open()) {
            conn = common::pg::connect_with_backoff(db.conninfo, stop);
            if (!conn) break;
            common::pg::require_current_schema(*conn);
          }
          common::reap::reap_once(*conn, config, queue);
          if (once) return 0;
        } catch (const common::pg::SchemaTooNew& e) {
          log::fatal("{}", e.what());
        } catch (const std::exception& e) {
          log::warn("reaper pass failed: {}", e.what());
          if (once) return 1;
          conn.reset();
        }
        for (auto waited = std::chrono::milliseconds(0); waited < config.interval && !stop;
             waited += std::chrono::milliseconds(200))
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      conn.reset();
    } while (common::handle_reload(argv, [&] {
      auto next = common::load_config(options);
      common::read_database_config(next);
      common::read_queue_config(next);
      common::reap::read_reaper_config(next);
    }));
    log::info("wreaper stopped");
    return 0;
  });
}
