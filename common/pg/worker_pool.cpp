#include "pg/worker_pool.h"

#include "identity.h"
#include "log.h"
#include "pg/worker_loop.h"
#include "supervisor.h"

namespace wsmtp::common::pg {

void run_worker_pool(const WorkerPool& pool, const DatabaseConfig& database, const QueueConfig& queue,
                     const std::atomic<bool>& stop, const MakeWorkerStep& make_step) {
  // Each worker is a forked process with its own identity, connections and sessions.
  auto worker = [&] {
    const std::string owner = worker_identity();
    log::info("{} worker starting as {}", pool.program, owner);
    LeaseKeeper keeper(
        {.conninfo = database.conninfo, .lease_time = queue.lease_time, .stall_limit = pool.stall_limit});
    run_worker_loop({.conninfo = database.conninfo,
                     .channel = pool.channel,
                     .poll_interval = queue.poll_interval,
                     .batch_size = pool.batch_size,
                     .gather_time = queue.gather_time},
                    stop, make_step(owner, keeper));
    log::info("{} worker stopped", pool.program);
    return 0;
  };
  BacklogProbe probe(database.conninfo, pool.backlog);
  supervise(pool.scaling, queue.lease_time, stop, worker, [&probe] { return probe(); });
}

}  // namespace wsmtp::common::pg
