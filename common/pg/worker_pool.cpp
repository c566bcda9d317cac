#include "pg/worker_pool.h"

#include <memory>
#include <vector>

#include "identity.h"
#include "log.h"
#include "pg/shards.h"
#include "pg/worker_loop.h"
#include "supervisor.h"

namespace wsmtp::common::pg {

void run_worker_pool(const WorkerPool& pool, const DatabaseConfig& database, const QueueConfig& queue,
                     const std::atomic<bool>& stop, const MakeWorkerStep& make_step) {
  std::vector<std::unique_ptr<BacklogProbe>> probes;
  std::vector<WorkerGroup> groups;
  for (const auto& shard : database.shards) {
    // Each worker is a forked process with its own identity, connections and sessions.
    auto worker = [&pool, &database, &queue, &stop, &make_step, &shard] {
      const std::string owner = worker_identity();
      log::info("{} worker starting as {}{}", pool.program, owner, database.single() ? "" : " on shard " + shard.name);
      LeaseKeeper keeper({.conninfo = shard.conninfo, .lease_time = queue.lease_time, .stall_limit = pool.stall_limit});
      run_worker_loop({.conninfo = shard.conninfo,
                       .channel = pool.channel,
                       .poll_interval = queue.poll_interval,
                       .batch_size = pool.batch_size,
                       .gather_time = queue.gather_time,
                       .on_connect = [&database, &shard](
                                         pqxx::connection& conn) { require_shard_identity(conn, database, shard); }},
                      stop, make_step(owner, keeper, shard));
      log::info("{} worker stopped", pool.program);
      return 0;
    };
    probes.push_back(std::make_unique<BacklogProbe>(shard.conninfo, pool.backlog));
    groups.push_back(
        {database.single() ? "" : "shard " + shard.name, worker, [probe = probes.back().get()] { return (*probe)(); }});
  }
  supervise(pool.scaling, queue.lease_time, stop, groups);
}

}  // namespace wsmtp::common::pg
