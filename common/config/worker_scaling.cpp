#include "config/worker_scaling.h"

namespace wsmtp::common {

WorkerScaling read_worker_scaling(SectionReader& s) {
  using namespace std::chrono_literals;
  WorkerScaling w;
  w.min_workers = static_cast<int>(s.get_int("min_workers", w.min_workers, 1, 256));
  w.max_workers = static_cast<int>(s.get_int("max_workers", w.max_workers, 1, 256));
  if (w.max_workers < w.min_workers) s.fail("max_workers", "must be at least min_workers");
  w.backlog_per_worker = static_cast<int>(s.get_int("backlog_per_worker", w.backlog_per_worker, 1, 1000000));
  w.idle_time = s.get_duration("idle_time", w.idle_time, 1s, 24h);
  return w;
}

}  // namespace wsmtp::common
