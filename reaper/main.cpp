// wreaper: housekeeping for the queue. Returns expired leases, holds crash loops,
// deletes aborted receipts and expired finished messages, every `interval`.
#include <chrono>
#include <memory>
#include <thread>

#include "daemon.h"
#include "log.h"
#include "pg/connection.h"
#include "pg/migrate.h"
#include "reap/reap_pass.h"
#include "reap/reaper_config.h"

using namespace wsmtp;

int main(int argc, char** argv) {
  bool once = false;
  const common::Daemon<common::reap::ReaperConfig> daemon{
      .name = "wreaper",
      .description = "wreaper: the WSMTP queue reaper",
      .read_own = common::reap::read_reaper_config,
      .add_flags = [&once](CLI::App& app) { app.add_flag("--once", once, "run one pass and exit"); }};
  using Config = common::DaemonConfig<common::reap::ReaperConfig>;
  return common::run_daemon(daemon, argc, argv, [&once](const Config& config, const std::atomic<bool>& stop) {
    std::unique_ptr<pqxx::connection> conn;
    while (!stop) {
      try {
        if (!conn || !conn->is_open()) {
          conn = common::pg::connect_with_backoff(config.database.conninfo, stop);
          if (!conn) break;
          common::pg::require_current_schema(*conn);
        }
        common::reap::reap_once(*conn, config.own, config.queue);
        if (once) return std::optional<int>(0);
      } catch (const common::pg::SchemaTooNew& e) {
        log::fatal("{}", e.what());
      } catch (const std::exception& e) {
        log::warn("reaper pass failed: {}", e.what());
        if (once) return std::optional<int>(1);
        conn.reset();
      }
      for (auto waited = std::chrono::milliseconds(0); waited < config.own.interval && !stop;
           waited += std::chrono::milliseconds(200))
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return std::optional<int>();  // stopped: the daemon's signal says whether to reload
  });
}
