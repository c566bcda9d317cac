// The listener's store workers for the whole queue group: per shard a reserve
// of queue ids and a StoreWorkerPool whose connections all go to that shard,
// plus the pool that asks the directory (recipient checks). It places each new
// message (Placement) when the message takes its queue id, and sends every
// later op of the message to the pool of the shard its id names. One pool per
// shard, not one pool with a connection per shard in each worker: a shard that
// hangs parks only the sessions whose messages are on it, and each shard's
// group commits batch only its own messages (one transaction, one database).
// In the one-server layout it is the one pool of before: directory questions
// and messages share its connections. It knows no SQL and no SMTP.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "placement.h"
#include "queue_ids.h"
#include "store_op.h"
#include "store_worker.h"

namespace wsmtp::listener {

class ShardStores final : public QueueIdSource {
 public:
  using StoreFactory = StoreWorkerPool::StoreFactory;

  // shard_factories: one per placement shard, in its order, making Stores on
  // that shard. directory_shard: the shard whose database is the directory
  // (its pool answers directory questions); else directory_factory makes the
  // directory's Stores for a pool of their own. threads: workers per pool.
  // placement must outlive this.
  ShardStores(Placement& placement, std::vector<StoreFactory> shard_factories,
              std::optional<std::size_t> directory_shard, StoreFactory directory_factory, int threads);
  ~ShardStores();  // stop()
  ShardStores(const ShardStores&) = delete;
  ShardStores& operator=(const ShardStores&) = delete;

  // A loop's endpoints, one per pool.
  struct Endpoints {
    std::vector<int> per_pool;
  };
  // Attaches base to every pool (StoreWorkerPool::attach). Thread-safe.
  Endpoints attach(event_base* base, const StoreWorkerPool::CompletionHandler& on_done);

  // A queue id from the reserve of a shard chosen by weight among those in
  // rotation; nullopt when that reserve is empty or no shard takes mail
  // (submit() then decides). Thread-safe, never blocks.
  std::optional<std::int64_t> take() override;

  // Queues op on the pool that runs it: a recipient check on the directory's,
  // TakeQueueId on a shard chosen now, every op naming a message on the pool
  // of the message's shard; nullopt. Else (op dropped) the failure the caller
  // answers at once: TakeQueueId when no shard can take mail (no_shard), an op
  // of a message whose shard is out of rotation (its message gets 451; an
  // abort is still queued). Thread: the loop's.
  std::optional<StoreResult> submit(const Endpoints& endpoints, std::uint64_t session_id, StoreOp op);
  // Starts the refill of every shard in rotation whose reserve runs low.
  void refill_due(const Endpoints& endpoints, std::chrono::steady_clock::time_point now);
  // StoreWorkerPool::cancel_queued on every pool.
  void cancel_queued(const Endpoints& endpoints);
  // Fails every op waiting for shard's pool (it left the rotation). Thread-safe.
  void fail_queued(std::size_t shard);
  // Stops every pool (StoreWorkerPool::stop); idempotent.
  void stop();

  QueueIdReserve& reserve(std::size_t shard) { return *shards_.at(shard).ids; }
  const Placement& placement() const { return placement_; }

 private:
  struct Shard {
    std::unique_ptr<QueueIdReserve> ids;
    std::unique_ptr<StoreWorkerPool> pool;
  };
  // The pool index (shards first, then the directory's own) for a message id.
  std::size_t pool_of_message(std::int64_t msg_id) const;
  StoreWorkerPool& pool(std::size_t index);

  Placement& placement_;
  std::vector<Shard> shards_;
  QueueIdReserve directory_ids_;                     // unused: the directory issues no queue ids
  std::unique_ptr<StoreWorkerPool> directory_pool_;  // null when a shard's database is the directory
  std::size_t directory_index_;                      // pool index answering directory questions
};

}  // namespace wsmtp::listener
