// [listener] backlog_quota_*: one thread with its own Store reads, every
// backlog_check_interval, the backlog keys at or above the smallest quota
// (schema 020's counters, a few rows) into a snapshot that sessions read at
// MAIL and RCPT without a database round trip. No command ever waits for the
// sample; the snapshot is at most one interval old (plus one query) while the
// database answers, and the last good one is kept while it does not.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "backlog.h"
#include "store.h"
#include "store_sampler.h"

namespace wsmtp::listener {

class BacklogWatch {
 public:
  using StoreFactory = std::function<std::unique_ptr<common::Store>()>;

  // threshold: BacklogQuotas::threshold(); 0 samples nothing and keeps the
  // snapshot empty. A null factory starts no thread (tests feed observe()).
  // Otherwise the thread makes its Store with factory (again after any
  // failure). Does not throw for a database that is down.
  BacklogWatch(StoreFactory factory, std::uint64_t threshold, std::chrono::milliseconds interval);
  ~BacklogWatch();  // stop()
  BacklogWatch(const BacklogWatch&) = delete;
  BacklogWatch& operator=(const BacklogWatch&) = delete;

  // The latest totals; never null. Thread-safe, a mutex and a reference count.
  std::shared_ptr<const BacklogTotals> snapshot() const;
  // A reload's new quotas: takes effect from the next sample.
  void set_threshold(std::uint64_t threshold) { threshold_.store(threshold, std::memory_order_relaxed); }

  // One sample's result replaces the snapshot. Called by the thread; public so
  // sessions can be tested against chosen totals.
  void observe(BacklogTotals totals);

  // Ends the thread; idempotent.
  void stop();

 private:
  void sample(const StoreSampler::StoreRef& store);

  std::atomic<std::uint64_t> threshold_;
  std::size_t over_ = 0;  // the thread's only: keys in the last snapshot, for the log
  mutable std::mutex snapshot_mutex_;
  std::shared_ptr<const BacklogTotals> snapshot_;  // guarded by snapshot_mutex_
  std::unique_ptr<StoreSampler> sampler_;          // last: started once everything above exists
};

}  // namespace wsmtp::listener
