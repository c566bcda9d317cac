// The reaper over a queue group: one pass per shard, each on its own thread
// and its own connection (checked for schema and shard identity), so a shard
// that is down or slow holds up no other shard's pass. Every reaper step is a
// shard's (reap/reap_pass.h); the directory needs none: relay down marks and
// over-quota marks lapse by their own time stamps.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "config/common_config.h"
#include "reap/reap_pass.h"
#include "reap/reaper_config.h"

namespace wsmtp::common::reap {

// What one shard's pass came to: its summary, or why it did not run.
struct ShardPass {
  std::string shard;
  std::optional<PassSummary> summary;  // nullopt: failed
  std::string error;                   // for a failure
};

// Connects to shard once and checks it (require_current_schema,
// require_shard_identity). Throws pqxx::broken_connection when unreachable,
// SchemaTooNew, std::runtime_error for another schema version, WrongShard.
std::unique_ptr<pqxx::connection> connect_shard(const DatabaseConfig& database, const ShardConfig& shard);

// One pass on every shard of database at once (`wreaper --once`): one
// connection attempt per shard, no retry. Results in shard order; a shard
// that failed has no summary and never stops the others.
std::vector<ShardPass> reap_shards_once(const DatabaseConfig& database, const ReaperConfig& config,
                                        const QueueConfig& queue);

// wreaper's loop for one shard until stop: (re)connects with backoff, checks
// the shard, and runs a pass every config.interval; a failed pass is logged
// and the connection remade. A shard whose schema is newer than this binary
// is fatal (aborts), as for every daemon.
void reap_shard_until_stopped(const DatabaseConfig& database, const ShardConfig& shard, const ReaperConfig& config,
                              const QueueConfig& queue, const std::atomic<bool>& stop);

}  // namespace wsmtp::common::reap
