// [listener] queue_max_size (Postfix's queue_minfree): per queue shard one
// thread with its own Store samples the shard's database size every
// queue_size_check_interval and keeps a flag per shard; a change is handed to
// on_change (the Placement: a full shard leaves the rotation, and MAIL gets
// 452 4.3.1 only once every shard is full). No command ever waits for a
// sample. It knows no SMTP; the session decides.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store.h"
#include "store_sampler.h"

namespace wsmtp::listener {

class QueueWatch {
 public:
  using StoreFactory = std::function<std::unique_ptr<common::Store>()>;
  using OnChange = std::function<void(std::size_t shard, bool full)>;
  struct Shard {
    std::string name;  // for the log lines; "" for the one database of the one-server layout
    StoreFactory factory;
  };

  // max_size 0: off, no thread and no connection; nothing is ever full.
  // Otherwise starts one sampling thread per shard, which makes its Store with
  // the shard's factory (again after any failure). on_change (may be empty)
  // runs on the sampling thread at each change. Does not throw for a
  // database that is down (its last sample stays in force).
  QueueWatch(std::vector<Shard> shards, std::uint64_t max_size, std::chrono::milliseconds interval, OnChange on_change);
  ~QueueWatch();  // stop()
  QueueWatch(const QueueWatch&) = delete;
  QueueWatch& operator=(const QueueWatch&) = delete;

  bool full(std::size_t shard) const { return full_[shard].load(std::memory_order_relaxed); }

  // One sample of `size` bytes for shard: sets or clears its flag, logging
  // each change once at warn. Called by the threads; public so the rule can be tested.
  void observe(std::size_t shard, std::uint64_t size);

  // Ends the threads; idempotent.
  void stop();

 private:
  const std::uint64_t max_size_;
  const std::vector<std::string> names_;
  OnChange on_change_;
  std::unique_ptr<std::atomic<bool>[]> full_;            // one per shard
  std::vector<std::unique_ptr<StoreSampler>> samplers_;  // last: started once everything above exists
};

}  // namespace wsmtp::listener
