// How a wsmtpctl queue command covers the queue group: it visits each shard in
// turn (id order), each on its own connection and in its own transactions, and
// a shard that cannot be reached, or whose database is not the configured shard,
// is reported on stderr and skipped so the command still covers the others. In
// the one-server layout nothing changes: one shard, the directory's connection,
// and its errors reach main() as they always did. Knows nothing of what the
// command does on a shard.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "config/common_config.h"
#include "db/message_filter.h"
#include "json_output.h"

namespace wsmtp::ctl {

class Context;

// A shard the command could not cover, and why.
struct ShardProblem {
  std::string shard;
  bool unreachable = false;  // else: its database is another shard's (or unclaimed), or a statement failed
  std::string error;
};

class ShardSweep {
 public:
  explicit ShardSweep(Context& ctx);

  // Calls step(shard, conn) for every configured shard, id order. A shard whose
  // connection fails (at connect or during step: its transaction rolled back),
  // whose identity is wrong, or whose statement fails becomes a ShardProblem,
  // printed at once ("wsmtpctl: shard q2 unreachable: ..."), and the sweep goes
  // on: the shards before it committed, and the report must say so. Other
  // errors propagate.
  void each(const std::function<void(const common::ShardConfig&, pqxx::connection&)>& step);

  // The same for one shard; false if it became a problem.
  bool visit(const common::ShardConfig& shard,
             const std::function<void(const common::ShardConfig&, pqxx::connection&)>& step);

  const std::vector<ShardProblem>& problems() const { return problems_; }
  // The problem of this shard, or nullptr.
  const ShardProblem* problem(const std::string& shard) const;

  // The command's exit status given status, the status of the work done:
  // 3 (database unreachable) when a shard was unreachable, else 1 when a shard
  // had another problem, else status.
  int exit_status(int status) const;

  // [{"name", "id", "ok", "reachable", "error"?}] for every configured shard;
  // ok: the command covered it.
  Json shards_json() const;

 private:
  Context& ctx_;
  std::set<int> checked_;  // shards whose identity was confirmed on this connection
  std::vector<ShardProblem> problems_;
};

// Named message ids grouped by the shard id their queue id names (queue_id.h).
std::map<int, std::vector<std::int64_t>> ids_by_shard(const std::vector<std::int64_t>& ids);

// filter as it applies to the shard shard_id: with named ids (named, from
// ids_by_shard), only those on that shard, and nullopt when none is (never
// "every message"); without, filter itself.
std::optional<common::pg::MessageFilter> filter_for_shard(const common::pg::MessageFilter& filter,
                                                          const std::map<int, std::vector<std::int64_t>>& named,
                                                          int shard_id);

}  // namespace wsmtp::ctl
