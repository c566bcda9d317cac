// The keys that size a supervised daemon's pool of worker processes, the same
// in [router] and [deliver] (common/supervisor.h runs the pool).
#pragma once

#include <chrono>

#include "config/config_file.h"

namespace wsmtp::common {

// Between min and max worker processes, one per backlog_per_worker waiting
// messages; a surplus worker idle for idle_time retires.
struct WorkerScaling {
  int min_workers = 1;
  int max_workers = 4;
  int backlog_per_worker = 200;
  std::chrono::seconds idle_time{30};
};

// Reads the four keys from the section s reads (call before s.finish()).
WorkerScaling read_worker_scaling(SectionReader& s);

}  // namespace wsmtp::common
