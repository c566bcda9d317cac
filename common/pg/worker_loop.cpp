#include "pg/worker_loop.h"

#include <thread>

#include "log.h"
#include "pg/connection.h"
#include "pg/migrate.h"
#include "pg/waiter.h"

namespace wsmtp::common::pg {

using namespace std::chrono_literals;

void run_worker_loop(const WorkerLoopOptions& options, const std::atomic<bool>& stop,
                     const std::function<int(pqxx::connection&)>& step) {
  while (!stop) {
    auto conn = connect_with_backoff(options.conninfo, stop);
    if (!conn) return;
    try {
      require_current_schema(*conn);
      WorkWaiter waiter(*conn, options.channel);
      log::info("connected to database, waiting for work on {}", options.channel);
      while (!stop) {
        const int handled = step(*conn);
        if (handled > 0 && (options.batch_size <= 0 || handled >= options.batch_size)) continue;
        // Sleep in short slices so SIGTERM is noticed promptly; a NOTIFY ends the wait at once.
        auto deadline = std::chrono::steady_clock::now() + options.poll_interval;
        while (!stop && std::chrono::steady_clock::now() < deadline)
          if (waiter.wait(500ms)) break;
      }
      return;
    } catch (const SchemaTooNew& e) {
      log::fatal("{}", e.what());
    } catch (const std::exception& e) {
      if (is_connection_error(e) || !conn->is_open()) {
        log::warn("database connection lost: {}; reconnecting", e.what());
      } else {
        log::error("worker step failed: {}; retrying in 1s", e.what());
        std::this_thread::sleep_for(1s);
      }
    }
  }
}

}  // namespace wsmtp::common::pg
