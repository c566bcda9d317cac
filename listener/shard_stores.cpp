#include "shard_stores.h"

#include <stdexcept>
#include <variant>

#include "log.h"
#include "queue_id.h"

namespace wsmtp::listener {

ShardStores::ShardStores(Placement& placement, std::vector<StoreFactory> shard_factories,
                         std::optional<std::size_t> directory_shard, StoreFactory directory_factory, int threads)
    : placement_(placement) {
  if (shard_factories.size() != placement.size()) throw std::invalid_argument("one store factory per shard");
  for (auto& factory : shard_factories) {
    Shard shard;
    shard.ids = std::make_unique<QueueIdReserve>();
    shard.pool = std::make_unique<StoreWorkerPool>(std::move(factory), threads, *shard.ids);
    shards_.push_back(std::move(shard));
  }
  if (directory_shard) {
    directory_index_ = *directory_shard;
  } else {
    directory_pool_ = std::make_unique<StoreWorkerPool>(std::move(directory_factory), threads, directory_ids_);
    directory_index_ = shards_.size();
  }
}

ShardStores::~ShardStores() { stop(); }

StoreWorkerPool& ShardStores::pool(std::size_t index) {
  return index < shards_.size() ? *shards_[index].pool : *directory_pool_;
}

ShardStores::Endpoints ShardStores::attach(event_base* base, const StoreWorkerPool::CompletionHandler& on_done) {
  Endpoints endpoints;
  for (auto& shard : shards_) endpoints.per_pool.push_back(shard.pool->attach(base, on_done));
  if (directory_pool_) endpoints.per_pool.push_back(directory_pool_->attach(base, on_done));
  return endpoints;
}

std::optional<std::int64_t> ShardStores::take() {
  auto shard = placement_.pick();
  if (!shard) return std::nullopt;
  return shards_[*shard].ids->take();
}

std::size_t ShardStores::pool_of_message(std::int64_t msg_id) const {
  auto index = placement_.index_of(common::shard_of(msg_id));
  // Every id a session holds came from one of our shards' reserves.
  if (!index) log::fatal("msg={} names no configured shard (listener bug)", common::qid(msg_id));
  return *index;
}

std::optional<StoreResult> ShardStores::submit(const Endpoints& endpoints, std::uint64_t session_id, StoreOp op) {
  std::size_t index = 0;
  if (std::holds_alternative<CheckRecipient>(op) || std::holds_alternative<VerifyUser>(op)) {
    index = directory_index_;
  } else if (std::holds_alternative<TakeQueueId>(op) || std::holds_alternative<RefillQueueIds>(op)) {
    auto shard = placement_.pick();
    if (!shard) {
      StoreResult none;
      none.error = "no queue shard can take mail";
      none.no_shard = true;
      return none;
    }
    index = *shard;
  } else {
    std::int64_t msg_id = std::visit(
        [](const auto& o) -> std::int64_t {
          using T = std::decay_t<decltype(o)>;
          if constexpr (std::is_same_v<T, StoreWhole>)
            return o.message.msg_id;
          else if constexpr (requires { o.msg_id; })
            return o.msg_id;
          else
            return 0;
        },
        op);
    index = pool_of_message(msg_id);
    // Its shard failed since the message was placed: 451 now rather than an
    // attempt that can only fail (or queue behind one that is waiting for
    // the shard). The abort still goes: it removes a state-0 row if it can.
    if (!placement_.reachable(index) && !std::holds_alternative<AbortMessage>(op)) {
      StoreResult down;
      down.error = "shard " + placement_.shard(index).name + " is out of rotation";
      return down;
    }
  }
  pool(index).submit(endpoints.per_pool.at(index), session_id, std::move(op));
  return std::nullopt;
}

void ShardStores::refill_due(const Endpoints& endpoints, std::chrono::steady_clock::time_point now) {
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    // A shard out of rotation is not asked: its reserve is not being used.
    if (!placement_.in_rotation(i) || !shards_[i].ids->refill_due(now)) continue;
    // Session 0: nobody waits for the answer.
    shards_[i].pool->submit(endpoints.per_pool.at(i), 0, RefillQueueIds{});
  }
}

void ShardStores::cancel_queued(const Endpoints& endpoints) {
  for (std::size_t i = 0; i < endpoints.per_pool.size(); ++i) pool(i).cancel_queued(endpoints.per_pool[i]);
}

void ShardStores::fail_queued(std::size_t shard) {
  shards_.at(shard).pool->fail_queued("shard " + placement_.shard(shard).name + " left the rotation");
}

void ShardStores::stop() {
  for (auto& shard : shards_) shard.pool->stop();
  if (directory_pool_) directory_pool_->stop();
}

}  // namespace wsmtp::listener
