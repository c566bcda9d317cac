// Across shards each key's total is a sum of parts, and each shard reports
// only its keys at or above a part threshold. A key whose sum reaches the
// threshold T over N shards has a part of at least T/N on some shard
// (pigeonhole), so each shard reports keys from ceil(T/N) up, and besides those
// every key another shard reported (a candidate), whatever its part: from the
// sample after a key first shows up anywhere, its sum is exact. With one shard
// there are no candidates and the one query is the one of before.
#include "backlog_watch.h"

#include <set>
#include <utility>

#include "log.h"

namespace wsmtp::listener {

BacklogWatch::BacklogWatch(std::vector<StoreFactory> shards, std::uint64_t threshold,
                           std::chrono::milliseconds interval)
    : threshold_(threshold), per_shard_(shards.size()), snapshot_(std::make_shared<const BacklogTotals>()) {
  for (std::size_t i = 0; i < shards.size(); ++i) {
    if (!shards[i]) continue;
    samplers_.push_back(std::make_unique<StoreSampler>(
        shards.size() == 1 ? "backlog" : "backlog of shard #" + std::to_string(i + 1), std::move(shards[i]), interval,
        [this, i](const StoreSampler::StoreRef& store) { sample(i, store); }));
  }
}

BacklogWatch::~BacklogWatch() { stop(); }

void BacklogWatch::stop() {
  for (auto& sampler : samplers_) sampler->stop();
}

std::shared_ptr<const BacklogTotals> BacklogWatch::snapshot() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_;
}

void BacklogWatch::observe(BacklogTotals totals) {
  auto fresh = std::make_shared<const BacklogTotals>(std::move(totals));
  std::lock_guard lock(snapshot_mutex_);
  snapshot_ = std::move(fresh);
}

std::uint64_t BacklogWatch::part_threshold(std::uint64_t threshold) const {
  const auto n = static_cast<std::uint64_t>(per_shard_.size());
  return n <= 1 ? threshold : (threshold + n - 1) / n;
}

void BacklogWatch::observe_shard(std::size_t shard, BacklogTotals parts, std::uint64_t threshold) {
  std::lock_guard lock(shards_mutex_);
  per_shard_.at(shard) = std::move(parts);
  BacklogTotals sum;
  for (const auto& part : per_shard_)
    for (const auto& [key, total] : part) sum[key] += total;
  std::erase_if(sum, [&](const auto& entry) { return entry.second < threshold; });
  const auto keys = sum.size();
  observe(std::move(sum));
  if (std::exchange(over_, keys) != keys && keys != 0)
    log::info("backlog: {} keys at or above the smallest quota", keys);
}

std::vector<std::string> BacklogWatch::candidates(std::size_t shard) {
  std::lock_guard lock(shards_mutex_);
  std::set<std::string> keys;
  for (std::size_t i = 0; i < per_shard_.size(); ++i)
    if (i != shard)
      for (const auto& [key, total] : per_shard_[i]) keys.insert(key);
  return {keys.begin(), keys.end()};
}

void BacklogWatch::sample(std::size_t shard, const StoreSampler::StoreRef& store) {
  const auto threshold = threshold_.load(std::memory_order_relaxed);
  if (threshold == 0) return observe_shard(shard, {}, threshold);
  BacklogTotals parts;
  for (auto& [key, total] : store().backlogs_at_least(part_threshold(threshold), candidates(shard)))
    parts.emplace(std::move(key), total);
  observe_shard(shard, std::move(parts), threshold);
}

}  // namespace wsmtp::listener
