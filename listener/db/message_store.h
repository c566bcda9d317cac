// The listener's Store on PostgreSQL: one connection, reconnected on the next
// call after a failure (that call's message gets 451 and the client retries).
// A store on a queue shard checks, on every new connection, that the database
// is that shard (require_shard_identity), and reports each connection error or
// wrong database to its `lost` hook, which takes the shard out of rotation.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config/common_config.h"
#include "db/wakeup.h"
#include "store.h"

namespace wsmtp::common::pg {

// Told why a shard failed: its connection broke or could not be made
// (wrong_database false), or its database is not the configured shard.
using ShardLost = std::function<void(const std::string& why, bool wrong_database)>;

// A store on a database that is no shard of a group: the directory (recipient
// checks, AUTH), or the one database of tests; no identity check, no health
// reports.
// waker (required) sends the router's wake-up after each commit from its own
// thread; one is shared by all of a shard's stores.
std::unique_ptr<Store> make_pg_store(const std::string& conninfo, std::shared_ptr<WakeupSender> waker);

// Shared by all the stores of one shard: counts the connection errors any of
// them saw. A store whose connection is older than the last one connects
// again before its next statement, so after an outage the shard's stores do
// not each find their dead connection by failing a client's message.
struct ShardEpoch {
  std::atomic<std::uint64_t> errors{0};
};

// A store on shard (one of database.shards); lost may be empty. The waker
// must be the shard's (NOTIFY on the message's shard); epoch (may be null)
// the shard's.
std::unique_ptr<Store> make_shard_store(const DatabaseConfig& database, const ShardConfig& shard,
                                        std::shared_ptr<WakeupSender> waker, ShardLost lost,
                                        std::shared_ptr<ShardEpoch> epoch);

// The health check of a shard out of rotation: connects, runs SELECT 1 and
// checks the shard's identity. Returns "" when it answers and is the shard;
// else why not, with wrong_database set for a database that is another shard's.
std::string check_shard(const DatabaseConfig& database, const ShardConfig& shard, bool& wrong_database);

}  // namespace wsmtp::common::pg
