// The weighted choice is over the shards' cumulative weights: a draw maps to
// one shard in proportion to its weight, so over many messages each shard gets
// its share, and a shard that leaves the rotation simply drops out of the sum
// (its share goes to the others in proportion to theirs).
#include "placement.h"

#include <random>
#include <stdexcept>

#include "queue_id.h"

namespace wsmtp::listener {

Placement::Placement(std::vector<Shard> shards, bool track_health)
    : shards_(std::move(shards)), track_health_(track_health), states_(std::make_unique<State[]>(shards_.size())) {
  if (shards_.empty()) throw std::invalid_argument("a placement needs at least one shard");
}

std::optional<std::size_t> Placement::pick(std::uint32_t draw) const {
  // Full shards count only when every shard is full (all_full_): then the
  // choice is among the reachable ones, as if no shard were full.
  const bool ignore_full = all_full_.load(std::memory_order_relaxed);
  auto weight = [&](std::size_t i) -> std::uint64_t {
    const auto& s = states_[i];
    bool eligible = shards_[i].weight > 0 && s.reachable.load(std::memory_order_relaxed) &&
                    (ignore_full || !s.full.load(std::memory_order_relaxed));
    return eligible ? static_cast<std::uint64_t>(shards_[i].weight) : 0;
  };
  if (shards_.size() == 1) return weight(0) > 0 ? std::optional<std::size_t>(0) : std::nullopt;
  // One snapshot of the weights: another thread may change a shard's state meanwhile.
  std::vector<std::uint64_t> weights(shards_.size());
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < shards_.size(); ++i) total += weights[i] = weight(i);
  if (total == 0) return std::nullopt;
  // draw * total / 2^32: uniform over [0, total).
  std::uint64_t point = (static_cast<std::uint64_t>(draw) * total) >> 32;
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    if (point < weights[i]) return i;
    point -= weights[i];
  }
  return std::nullopt;  // unreachable: point < total
}

std::optional<std::size_t> Placement::pick() const {
  if (shards_.size() == 1) return pick(0);
  thread_local std::minstd_rand generator{std::random_device{}()};
  std::uniform_int_distribution<std::uint32_t> uniform;
  return pick(uniform(generator));
}

bool Placement::set_reachable(std::size_t index, bool reachable) {
  if (!track_health_) return false;
  return states_[index].reachable.exchange(reachable) != reachable;
}

bool Placement::set_full(std::size_t index, bool full) {
  bool changed = states_[index].full.exchange(full) != full;
  if (changed) update_all_full();
  return changed;
}

void Placement::update_all_full() {
  bool all = true;
  for (std::size_t i = 0; i < shards_.size(); ++i)
    if (shards_[i].weight > 0 && !states_[i].full.load()) all = false;
  all_full_.store(all);
}

bool Placement::reachable(std::size_t index) const { return states_[index].reachable.load(); }

bool Placement::in_rotation(std::size_t index) const {
  return shards_.at(index).weight > 0 && states_[index].reachable.load() &&
         (all_full_.load() || !states_[index].full.load());
}

std::optional<std::size_t> Placement::index_of(int shard_id) const {
  for (std::size_t i = 0; i < shards_.size(); ++i)
    if (shards_[i].id == shard_id) return i;
  return std::nullopt;
}

const std::string& Placement::name_of_message(std::int64_t msg_id) const {
  static const std::string unknown;
  auto index = index_of(common::shard_of(msg_id));
  return index ? shards_[*index].name : unknown;
}

}  // namespace wsmtp::listener
