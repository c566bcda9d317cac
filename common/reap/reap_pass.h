// One reaper pass (wreaper's loop and `wsmtpctl reap --once`): return expired
// leases (2->1, 4->3; holding crash loops), bounce deliveries past the queue
// lifetime, delete aborted receipts (state 0) and finished messages past
// retention (state 5), and fold the backlog counters (schema 020). Each step runs in bounded batches with SKIP LOCKED,
// so several reapers at once split the work, and a reaper killed mid-pass leaves only whole batches done.
#pragma once

#include <string>

#include <pqxx/pqxx>

#include "config/common_config.h"
#include "reap/reaper_config.h"

namespace wsmtp::common::reap {

struct PassSummary {
  int routing_reset = 0;
  int delivering_reset = 0;
  int held = 0;
  int expired_bounced = 0;
  int aborted_deleted = 0;
  int done_deleted = 0;
  int backlog_folded = 0;  // backlog_counts rows merged
};

// One pass on conn's database, a queue shard (every step is the shard's own;
// shard_passes.h runs it on each shard of a group). shard names it in the log
// line ("" in the one-server layout's callers that have no name at hand).
// Throws pqxx exceptions; whatever batches committed before stay done.
PassSummary reap_once(pqxx::connection& conn, const ReaperConfig& config, const QueueConfig& queue,
                      const std::string& shard = "");

}  // namespace wsmtp::common::reap
