#include "queue_watch.h"

#include <exception>
#include <utility>

#include "log.h"

namespace wsmtp::listener {

QueueWatch::QueueWatch(StoreFactory factory, std::uint64_t max_size, std::chrono::milliseconds interval)
    : factory_(std::move(factory)), max_size_(max_size), interval_(interval) {
  if (max_size_ != 0) thread_ = std::thread([this] { run(); });
}

QueueWatch::~QueueWatch() { stop(); }

void QueueWatch::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void QueueWatch::observe(std::uint64_t size) {
  const bool full = size >= max_size_;
  if (full_.exchange(full, std::memory_order_relaxed) == full) return;
  if (full)
    log::warn("queue full: database is {} bytes, queue_max_size {}; MAIL answered 452 4.3.1", size, max_size_);
  else
    log::warn("queue no longer full: database is {} bytes, queue_max_size {}", size, max_size_);
}

// A failed sample keeps the last verdict: a database that cannot answer
// pg_database_size() cannot take mail either, and the store workers' own
// errors (451) already tell the clients so.
void QueueWatch::sample() {
  try {
    if (!store_) store_ = factory_();
    observe(store_->queue_size());
    if (std::exchange(failing_, false)) log::info("queue size sampled again");
  } catch (const std::exception& e) {
    store_.reset();  // a fresh connection next time
    if (!std::exchange(failing_, true)) log::warn("queue size not sampled: {}", e.what());
  }
}

void QueueWatch::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    sample();
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

}  // namespace wsmtp::listener
