// [listener] queue_max_size (Postfix's queue_minfree): one thread with its own
// Store samples the queue database's size every queue_size_check_interval and
// keeps a flag that sessions read at MAIL (452 4.3.1 while it is set). No
// command ever waits for the sample. It knows no SMTP; the session decides.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "store.h"
#include "store_sampler.h"

namespace wsmtp::listener {

class QueueWatch {
 public:
  using StoreFactory = std::function<std::unique_ptr<common::Store>()>;

  // max_size 0: off, no thread and no connection; full() stays false.
  // Otherwise starts the sampling thread, which makes its Store with factory
  // (again after any failure). Does not throw for a database that is down.
  QueueWatch(StoreFactory factory, std::uint64_t max_size, std::chrono::milliseconds interval);
  ~QueueWatch();  // stop()
  QueueWatch(const QueueWatch&) = delete;
  QueueWatch& operator=(const QueueWatch&) = delete;

  // What sessions read; lives as long as the QueueWatch.
  const std::atomic<bool>& full_flag() const { return full_; }
  bool full() const { return full_.load(std::memory_order_relaxed); }

  // One sample of `size` bytes: sets or clears the flag, logging each change
  // once at warn. Called by the thread; public so the rule can be tested.
  void observe(std::uint64_t size);

  // Ends the thread; idempotent.
  void stop();

 private:
  const std::uint64_t max_size_;
  std::atomic<bool> full_{false};
  std::unique_ptr<StoreSampler> sampler_;  // last: started once everything above exists
};

}  // namespace wsmtp::listener
