// `wsmtpctl queue` over the queue group: each shard's report as read from its
// database, and their sum (counts added, the oldest age the largest, top lists
// summed by key and cut again). Pure: the reports come in as values, so the
// arithmetic is unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "db/message_view.h"
#include "db/queue_report.h"

namespace wsmtp::ctl {

struct ShardQueue {
  std::string name;
  int id = 0;
  std::vector<common::pg::StateSummary> summary;
  common::pg::Backlog backlog;
  std::vector<common::pg::BackedOffDestination> backed_off;
  std::vector<common::pg::BacklogEntry> backlogs;
};

using CountedKeys = std::vector<std::pair<std::string, std::int64_t>>;

struct QueueTotals {
  std::vector<common::pg::StateSummary> summary;  // one per state, in state order
  std::int64_t deferred = 0;
  CountedKeys top_senders, top_destinations;
  std::vector<common::pg::BacklogEntry> backlogs;
};

// The group's queue. For the top lists to be exact, each shard's lists must
// hold every key (not just its own top): a key can lead the sum while leading
// no shard. Each list is cut to `top`, largest first, ties by key.
QueueTotals sum_queues(const std::vector<ShardQueue>& shards, int top);

}  // namespace wsmtp::ctl
