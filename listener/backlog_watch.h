// [listener] backlog_quota_*: per queue shard one thread with its own Store
// reads, every backlog_check_interval, the backlog keys at or above the
// smallest quota (schema 020's counters, a few rows); the snapshot that
// sessions read at MAIL and RCPT without a database round trip is their sum
// over the shards, so a quota holds across the group. No command ever waits
// for a sample; each shard's part is at most one interval old (plus one
// query) while the shard answers, and its last good sample is kept while it
// does not.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backlog.h"
#include "store.h"
#include "store_sampler.h"

namespace wsmtp::listener {

class BacklogWatch {
 public:
  using StoreFactory = std::function<std::unique_ptr<common::Store>()>;

  // threshold: BacklogQuotas::threshold(); 0 samples nothing and keeps the
  // snapshot empty. One factory per shard; a null one starts no thread for
  // its shard (tests feed observe()). Otherwise each shard's thread makes its
  // Store with its factory (again after any failure). Does not throw for a
  // database that is down.
  BacklogWatch(std::vector<StoreFactory> shards, std::uint64_t threshold, std::chrono::milliseconds interval);
  ~BacklogWatch();  // stop()
  BacklogWatch(const BacklogWatch&) = delete;
  BacklogWatch& operator=(const BacklogWatch&) = delete;

  // The latest totals; never null. Thread-safe, a mutex and a reference count.
  std::shared_ptr<const BacklogTotals> snapshot() const;
  // A reload's new quotas: takes effect from the next sample.
  void set_threshold(std::uint64_t threshold) { threshold_.store(threshold, std::memory_order_relaxed); }

  // One sample's result replaces the snapshot. Public so sessions can be
  // tested against chosen totals.
  void observe(BacklogTotals totals);
  // Shard's sample (its parts) replaces its last; the snapshot becomes the
  // sum of the shards' last samples, keys at or above threshold only. Called
  // by the threads; public for tests.
  void observe_shard(std::size_t shard, BacklogTotals parts, std::uint64_t threshold);
  // The part a shard reports a key from (backlog_watch.cpp): threshold / shards, rounded up.
  std::uint64_t part_threshold(std::uint64_t threshold) const;
  // The keys the other shards reported last, which shard reports whatever their part.
  std::vector<std::string> candidates(std::size_t shard);

  // Ends the thread; idempotent.
  void stop();

 private:
  void sample(std::size_t shard, const StoreSampler::StoreRef& store);

  std::atomic<std::uint64_t> threshold_;
  std::mutex shards_mutex_;               // taken before snapshot_mutex_, by the threads only
  std::vector<BacklogTotals> per_shard_;  // guarded by shards_mutex_
  std::size_t over_ = 0;                  // guarded by shards_mutex_: keys in the last snapshot, for the log
  mutable std::mutex snapshot_mutex_;
  std::shared_ptr<const BacklogTotals> snapshot_;        // guarded by snapshot_mutex_
  std::vector<std::unique_ptr<StoreSampler>> samplers_;  // last: started once everything above exists
};

}  // namespace wsmtp::listener
