// wsmtpctl reset: stuck messages one state back (2->1, 4->3), on every shard
// with the same filters (each shard in its own transaction), or on the one
// shard a --id names.
#pragma once

#include <cstdint>
#include <string>

namespace wsmtp::ctl {

class Context;

struct ResetArgs {
  std::int64_t id = 0;
  std::string state;
  std::string older_than;
  std::string sender;
  bool dry_run = false;
  bool force = false;
  int limit = 10000;  // over all shards
};

// Prints what was (or would be) reset; returns the exit status. Throws
// UsageError for bad flags, CommandError for an id whose shard is not configured.
int reset(Context& ctx, const ResetArgs& args);

}  // namespace wsmtp::ctl
