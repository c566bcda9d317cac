// Message ids reserved ahead from the database, shared by every event loop and
// the store workers. A session takes its message's id when the body starts,
// before any row exists, so the Received: header, the rejection logs and the
// 250 all name the message by the queue id it will be stored under. Taking
// never waits on the database (loops may call it); a store worker refills the
// reserve, one statement per block, before it runs dry. Ids never used (the
// listener stopped, the message was refused) are gaps in the sequence, nothing
// else: the sequence never hands an id out twice, across restarts and hosts.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "store.h"

namespace wsmtp::listener {

// Where a session takes its message's queue id without waiting (the reserve
// of one shard, or the group's choice of shard: shard_stores.h).
class QueueIdSource {
 public:
  virtual ~QueueIdSource() = default;
  // Thread-safe, never blocks on the database. nullopt: none at hand; the
  // session asks a store worker (TakeQueueId) and waits for the answer.
  virtual std::optional<std::int64_t> take() = 0;
};

class QueueIdReserve final : public QueueIdSource {
 public:
  // Ids are reserved `block` at a time (1..1000); a refill is due when fewer
  // than half a block are left, so one arrives before the reserve is empty.
  explicit QueueIdReserve(int block = kDefaultBlock);

  // Thread-safe, never blocks on the database. nullopt: empty; the caller asks
  // a store worker (take_or_reserve) and waits for the answer.
  std::optional<std::int64_t> take() override;
  // Thread-safe. True once when the reserve runs low and no refill is under
  // way: the caller then has refill() run by a store worker. After a failed
  // refill, not again before kRetryPause has passed (a database that is down
  // is not asked at the rate clients send commands).
  bool refill_due(std::chrono::steady_clock::time_point now);

  // Store worker threads only (they block on store, which may throw):
  // One id, from the reserve or else from a fresh block (the rest is kept).
  std::int64_t take_or_reserve(common::Store& store);
  // Adds a fresh block. Ends the refill that refill_due() started, also when it throws.
  void refill(common::Store& store);

  std::size_t size();  // thread-safe; for tests and logs

  static constexpr int kDefaultBlock = 256;
  static constexpr std::chrono::seconds kRetryPause{1};

 private:
  void add(const std::vector<std::int64_t>& ids, std::size_t skip);

  const int block_;
  std::mutex mutex_;
  std::deque<std::int64_t> ids_;                        // guarded by mutex_
  bool refilling_ = false;                              // guarded by mutex_
  bool refill_failed_ = false;                          // guarded by mutex_
  std::chrono::steady_clock::time_point last_request_;  // guarded by mutex_
};

}  // namespace wsmtp::listener
