// The loop shared by the router and the deliverer: claim and process work until
// none is left, then sleep until NOTIFY or the poll interval, and survive
// database outages by reconnecting with backoff (no daemon exits for an outage).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

struct WorkerLoopOptions {
  std::string conninfo;
  std::string channel;  // kRouteChannel / kDeliverChannel
  std::chrono::seconds poll_interval{5};
  // The most units one step claims. A step that handled fewer found the queue
  // drained, so the loop waits for a NOTIFY (one that came meanwhile ends the
  // wait at once) instead of claiming again to find nothing: in a burst most
  // of the deliverers' claims were such empty ones. 0: always claim again.
  int batch_size = 0;
  // After a NOTIFY, wait this long for more work before claiming ([queue]
  // gather_time_ms): bigger batches in a burst for that much latency.
  std::chrono::milliseconds gather_time{0};
  // Called on every new connection after the schema check, before any work:
  // an exception from it stops the loop (a wrong database is a configuration
  // error, not an outage to wait out).
  std::function<void(pqxx::connection&)> on_connect;
};

// True at most once per period (the first call included): for work a worker
// does on a cadence rather than in every step, such as looking for expired
// leases.
class Cadence {
 public:
  explicit Cadence(std::chrono::milliseconds period) : period_(period) {}
  bool due() {
    auto now = std::chrono::steady_clock::now();
    if (now < next_) return false;
    next_ = now + period_;
    return true;
  }

 private:
  std::chrono::milliseconds period_;
  std::chrono::steady_clock::time_point next_{};
};

// step(conn) claims and processes one batch and returns how many units it
// handled; an exception from step is logged, and a connection error makes the
// loop reconnect. Returns when stop becomes true.
void run_worker_loop(const WorkerLoopOptions& options, const std::atomic<bool>& stop,
                     const std::function<int(pqxx::connection&)>& step);

}  // namespace wsmtp::common::pg
