#include "backlog_watch.h"

#include <exception>
#include <utility>

#include "log.h"

namespace wsmtp::listener {

BacklogWatch::BacklogWatch(StoreFactory factory, std::uint64_t threshold, std::chrono::milliseconds interval)
    : factory_(std::move(factory)),
      threshold_(threshold),
      interval_(interval),
      snapshot_(std::make_shared<const BacklogTotals>()) {
  if (factory_) thread_ = std::thread([this] { run(); });
}

BacklogWatch::~BacklogWatch() { stop(); }

void BacklogWatch::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const BacklogTotals> BacklogWatch::snapshot() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_;
}

void BacklogWatch::observe(BacklogTotals totals) {
  auto fresh = std::make_shared<const BacklogTotals>(std::move(totals));
  const auto keys = fresh->size();
  {
    std::lock_guard lock(snapshot_mutex_);
    snapshot_ = std::move(fresh);
  }
  if (std::exchange(over_, keys) != keys && keys != 0)
    log::info("backlog: {} keys at or above the smallest quota", keys);
}

// A failed sample keeps the last snapshot: a database that cannot answer
// cannot take mail either, and the store workers' own errors (451) say so.
void BacklogWatch::sample() {
  const auto threshold = threshold_.load(std::memory_order_relaxed);
  if (threshold == 0) return observe({});
  try {
    if (!store_) store_ = factory_();
    BacklogTotals totals;
    for (auto& [key, total] : store_->backlogs_at_least(threshold)) totals.emplace(std::move(key), total);
    observe(std::move(totals));
    if (std::exchange(failing_, false)) log::info("backlog sampled again");
  } catch (const std::exception& e) {
    store_.reset();  // a fresh connection next time
    if (!std::exchange(failing_, true)) log::warn("backlog not sampled, keeping the last one: {}", e.what());
  }
}

void BacklogWatch::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    sample();
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

}  // namespace wsmtp::listener
