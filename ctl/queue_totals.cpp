#include "queue_totals.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace wsmtp::ctl {
namespace {

CountedKeys sum_keys(const std::vector<const CountedKeys*>& lists, int top) {
  std::map<std::string, std::int64_t> sums;
  for (const auto* list : lists)
    for (const auto& [key, n] : *list) sums[key] += n;
  CountedKeys out(sums.begin(), sums.end());
  // As the shard's own query orders them: count descending, then key.
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (out.size() > static_cast<std::size_t>(top)) out.resize(static_cast<std::size_t>(top));
  return out;
}

}  // namespace

QueueTotals sum_queues(const std::vector<ShardQueue>& shards, int top) {
  QueueTotals t;
  if (shards.size() == 1) {
    // Nothing to add: the shard's own order (its collation's, for ties) stays.
    const auto& only = shards.front();
    auto cut = [top](auto list) {
      if (list.size() > static_cast<std::size_t>(top)) list.resize(static_cast<std::size_t>(top));
      return list;
    };
    return {only.summary, only.backlog.deferred_messages, cut(only.backlog.top_senders),
            cut(only.backlog.top_destinations), cut(only.backlogs)};
  }
  std::map<int, common::pg::StateSummary> states;
  for (auto state : common::kAllStates) states[static_cast<int>(state)] = common::pg::StateSummary{state};
  std::vector<const CountedKeys*> senders, destinations;
  std::map<std::pair<std::string, std::string>, std::int64_t> backlogs;
  for (const auto& shard : shards) {
    for (const auto& s : shard.summary) {
      auto& sum = states.try_emplace(static_cast<int>(s.state), common::pg::StateSummary{s.state}).first->second;
      sum.count += s.count;
      sum.held += s.held;
      sum.oldest_age_seconds = std::max(sum.oldest_age_seconds, s.oldest_age_seconds);
    }
    t.deferred += shard.backlog.deferred_messages;
    senders.push_back(&shard.backlog.top_senders);
    destinations.push_back(&shard.backlog.top_destinations);
    for (const auto& b : shard.backlogs) backlogs[{b.kind, b.name}] += b.count;
  }
  for (const auto& [state, sum] : states) t.summary.push_back(sum);
  t.top_senders = sum_keys(senders, top);
  t.top_destinations = sum_keys(destinations, top);
  for (const auto& [key, n] : backlogs) t.backlogs.push_back({key.first, key.second, n});
  // The shard's query orders by its stored key, whose prefix sorts its kinds as
  // their names do ("c:" client, "d:" sender domain, "u:" user).
  std::stable_sort(t.backlogs.begin(), t.backlogs.end(),
                   [](const auto& a, const auto& b) { return a.count > b.count; });
  if (t.backlogs.size() > static_cast<std::size_t>(top)) t.backlogs.resize(static_cast<std::size_t>(top));
  return t;
}

}  // namespace wsmtp::ctl
