// What wroute and wdeliver serve: a supervisor process that sizes a pool of
// forked workers per queue shard by that shard's backlog, each worker
// claiming batches from its shard in run_worker_loop with its leases renewed
// by a LeaseKeeper of its own on the same shard. The program supplies the
// channel, the backlog query and the step that handles one batch; this file
// knows nothing of routing or delivery.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include <pqxx/pqxx>

#include "config/common_config.h"
#include "config/worker_scaling.h"
#include "pg/backlog_probe.h"
#include "pg/lease_keeper.h"

namespace wsmtp::common::pg {

struct WorkerPool {
  std::string program;  // "wroute": the workers log "wroute worker starting as host:pid"
  std::string channel;  // kRouteChannel / kDeliverChannel
  int batch_size = 0;   // as WorkerLoopOptions::batch_size
  WorkerScaling scaling;
  // The longest a healthy worker waits on one step (LeaseKeeperOptions::stall_limit).
  std::chrono::seconds stall_limit{300};
  BacklogProbe::Query backlog;  // waiting units, asked in the supervisor
};

// Handles one claimed batch on conn (a connection to the worker's shard) and
// returns how many units it claimed.
using WorkerStep = std::function<int(pqxx::connection&)>;
// Called once in each worker process with its lease owner ("host:pid"), its
// keeper and its shard, all living until the worker stops; returns the
// worker's step.
using MakeWorkerStep =
    std::function<WorkerStep(const std::string& owner, LeaseKeeper& keeper, const ShardConfig& shard)>;

// Runs one group of workers per shard of database (scaling's bounds apply to
// each shard) until stop is set, then stops the workers (SIGTERM; SIGKILL
// after the queue's lease_time) and returns. A worker refuses a database that
// is not its shard (require_shard_identity): it exits, and the supervisor's
// restart backoff keeps retrying it slowly while the error is logged.
void run_worker_pool(const WorkerPool& pool, const DatabaseConfig& database, const QueueConfig& queue,
                     const std::atomic<bool>& stop, const MakeWorkerStep& make_step);

}  // namespace wsmtp::common::pg
