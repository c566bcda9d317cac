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
};

// step(conn) claims and processes one batch and returns how many units it
// handled; an exception from step is logged, and a connection error makes the
// loop reconnect. Returns when stop becomes true.
void run_worker_loop(const WorkerLoopOptions& options, const std::atomic<bool>& stop,
                     const std::function<int(pqxx::connection&)>& step);

}  // namespace wsmtp::common::pg
