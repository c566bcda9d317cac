#include "backlog_watch.h"

#include <utility>

#include "log.h"

namespace wsmtp::listener {

BacklogWatch::BacklogWatch(StoreFactory factory, std::uint64_t threshold, std::chrono::milliseconds interval)
    : threshold_(threshold), snapshot_(std::make_shared<const BacklogTotals>()) {
  if (factory)
    sampler_ = std::make_unique<StoreSampler>("backlog", std::move(factory), interval,
                                              [this](const StoreSampler::StoreRef& store) { sample(store); });
}

BacklogWatch::~BacklogWatch() { stop(); }

void BacklogWatch::stop() {
  if (sampler_) sampler_->stop();
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

void BacklogWatch::sample(const StoreSampler::StoreRef& store) {
  const auto threshold = threshold_.load(std::memory_order_relaxed);
  if (threshold == 0) return observe({});
  BacklogTotals totals;
  for (auto& [key, total] : store().backlogs_at_least(threshold)) totals.emplace(std::move(key), total);
  observe(std::move(totals));
}

}  // namespace wsmtp::listener
