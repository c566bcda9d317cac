// The scaling supervisor shared by wroute and wdeliver: keeps between a minimum
// and a maximum number of forked worker processes, adds workers while the
// backlog says so, retires surplus workers after they stayed unneeded for a
// while, restarts a worker that died with exponential backoff (a crash loop
// cannot fork-bomb the host), and on SIGTERM stops every worker gracefully
// (each finishes the message in hand). Knows nothing about messages or SQL:
// the program passes its worker body and its backlog measure.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/worker_scaling.h"

namespace wsmtp::common {

struct SupervisorOptions {
  int min_workers = 1;
  int max_workers = 4;
  int backlog_per_worker = 200;                // one worker per this many waiting units
  std::chrono::milliseconds idle_time{30000};  // a surplus must last this long before a worker retires
  std::chrono::milliseconds check_interval{500};
  std::chrono::milliseconds restart_backoff_min{500};
  std::chrono::milliseconds restart_backoff_max{30000};
  std::chrono::milliseconds stable_after{60000};  // a worker that lived this long resets the backoff
  std::chrono::milliseconds stop_grace{60000};    // after SIGTERM, stragglers get SIGKILL after this
};

// How many workers the backlog asks for, within [min_workers, max_workers].
int desired_workers(const SupervisorOptions& options, std::int64_t backlog);

// One pool of workers under the supervisor, sized by its own backlog within
// the options' bounds (wroute and wdeliver: one group per queue shard, so the
// workers go where the backlog is and a dead shard's group does not take the
// others' workers).
struct WorkerGroup {
  std::string name;  // in the supervisor's log lines ("shard q1"); may be empty
  std::function<int()> worker;
  std::function<std::optional<std::int64_t>()> backlog;
};

// Runs until stop becomes true (install_stop_signals() must have been called,
// so workers inherit the handlers), then stops the workers and returns 0.
// worker runs in each child process; its result is the child's exit status and
// the child exits without unwinding the parent's objects. A child also stops
// when the supervisor dies (Linux parent-death signal). backlog is called in
// the supervisor every check_interval; nullopt (unknown, e.g. the database is
// down) keeps the current number of workers.
int run_supervisor(const SupervisorOptions& options, const std::atomic<bool>& stop, const std::function<int()>& worker,
                   const std::function<std::optional<std::int64_t>()>& backlog);
// The same for several groups at once, each sized, restarted and backed off on
// its own; every group's backlog is asked every check_interval.
int run_supervisor(const SupervisorOptions& options, const std::atomic<bool>& stop,
                   const std::vector<WorkerGroup>& groups);

// The supervisor of wroute and wdeliver: workers sized by scaling until stop
// (a SIGHUP's reload is the caller's, common/daemon.h). Workers still running
// lease_time after the stop are killed: their lease renewal dies with them, so
// their leases expire and others take the work over.
void supervise(const WorkerScaling& scaling, std::chrono::seconds lease_time, const std::atomic<bool>& stop,
               const std::vector<WorkerGroup>& groups);

}  // namespace wsmtp::common
