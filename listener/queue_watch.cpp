#include "queue_watch.h"

#include <utility>

#include "log.h"

namespace wsmtp::listener {

namespace {
std::vector<std::string> names_of(const std::vector<QueueWatch::Shard>& shards) {
  std::vector<std::string> names;
  for (const auto& s : shards) names.push_back(s.name);
  return names;
}
}  // namespace

QueueWatch::QueueWatch(std::vector<Shard> shards, std::uint64_t max_size, std::chrono::milliseconds interval,
                       OnChange on_change)
    : max_size_(max_size),
      names_(names_of(shards)),
      on_change_(std::move(on_change)),
      full_(std::make_unique<std::atomic<bool>[]>(shards.size())) {
  if (max_size_ == 0) return;
  for (std::size_t i = 0; i < shards.size(); ++i)
    samplers_.push_back(std::make_unique<StoreSampler>(
        names_[i].empty() ? "queue size" : "queue size of shard " + names_[i], std::move(shards[i].factory), interval,
        [this, i](const StoreSampler::StoreRef& store) { observe(i, store().queue_size()); }));
}

QueueWatch::~QueueWatch() { stop(); }

void QueueWatch::stop() {
  for (auto& sampler : samplers_) sampler->stop();
}

void QueueWatch::observe(std::size_t shard, std::uint64_t size) {
  const bool full = size >= max_size_;
  if (full_[shard].exchange(full, std::memory_order_relaxed) == full) return;
  if (names_[shard].empty() && full)
    log::warn("queue full: database is {} bytes, queue_max_size {}; MAIL answered 452 4.3.1", size, max_size_);
  else if (full)
    log::warn("queue full: shard {} is {} bytes, queue_max_size {}; no new mail placed there", names_[shard], size,
              max_size_);
  else if (names_[shard].empty())
    log::warn("queue no longer full: database is {} bytes, queue_max_size {}", size, max_size_);
  else
    log::warn("queue no longer full: shard {} is {} bytes, queue_max_size {}", names_[shard], size, max_size_);
  if (on_change_) on_change_(shard, full);
}

}  // namespace wsmtp::listener
