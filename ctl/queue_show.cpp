#include "queue_show.h"

#include <iostream>
#include <limits>

#include <fmt/format.h>

#include "context.h"
#include "json_output.h"
#include "printable.h"
#include "queue_totals.h"
#include "shard_sweep.h"

namespace wsmtp::ctl {
namespace {

std::string age(double seconds) {
  if (seconds <= 0) return "-";
  auto s = static_cast<long long>(seconds);
  if (s < 120) return fmt::format("{}s", s);
  if (s < 7200) return fmt::format("{}m", s / 60);
  if (s < 172800) return fmt::format("{}h", s / 3600);
  return fmt::format("{}d", s / 86400);
}

Json pairs_json(const CountedKeys& pairs, const char* key) {
  Json out = Json::array();
  for (const auto& [name, count] : pairs) {
    Json entry = {{"count", count}};
    put_bytes(entry, key, name);
    out.push_back(std::move(entry));
  }
  return out;
}

Json states_json(const std::vector<common::pg::StateSummary>& summary) {
  Json states = Json::array();
  for (const auto& st : summary)
    states.push_back({{"state", static_cast<int>(st.state)},
                      {"name", std::string(common::state_name(st.state))},
                      {"count", st.count},
                      {"held", st.held},
                      {"oldest_seconds", static_cast<std::int64_t>(st.oldest_age_seconds)}});
  return states;
}

Json backed_off_json(const ShardQueue& shard) {
  Json out = Json::array();
  for (const auto& d : shard.backed_off)
    out.push_back({{"transport", d.transport},
                   {"destination", d.destination},
                   {"failures", d.failures},
                   {"seconds_left", static_cast<std::int64_t>(d.seconds_left)},
                   {"last_error", d.last_error},
                   {"shard", shard.name}});
  return out;
}

void print_json_report(const QueueTotals& t, const std::vector<ShardQueue>& shards, const ShardSweep& sweep) {
  Json destinations = Json::array();
  for (const auto& shard : shards)
    for (auto& d : backed_off_json(shard)) destinations.push_back(std::move(d));
  Json top_backlogs = Json::array();
  for (const auto& b : t.backlogs) {
    Json entry = {{"kind", b.kind}, {"count", b.count}};
    put_bytes(entry, "key", b.name);
    top_backlogs.push_back(std::move(entry));
  }
  // Each shard as the sweep saw it, with its own counts when it was covered.
  Json per_shard = sweep.shards_json();
  for (auto& entry : per_shard)
    for (const auto& shard : shards)
      if (shard.name == entry["name"]) {
        entry["states"] = states_json(shard.summary);
        entry["deferred"] = shard.backlog.deferred_messages;
        entry["backed_off_destinations"] = backed_off_json(shard);
      }
  print_json({{"states", states_json(t.summary)},
              {"deferred", t.deferred},
              {"top_senders", pairs_json(t.top_senders, "sender")},
              {"top_destinations", pairs_json(t.top_destinations, "domain")},
              {"backed_off_destinations", destinations},
              {"top_backlogs", top_backlogs},
              {"shards", per_shard}});
}

void print_shard_table(const std::vector<ShardQueue>& shards, Context& ctx, const ShardSweep& sweep) {
  std::cout << fmt::format("per shard:\n  {:<12} {:>5}", "SHARD", "ID");
  for (auto s : common::kAllStates) std::cout << fmt::format(" {:>10}", common::state_name(s));
  std::cout << fmt::format(" {:>7}\n", "HELD");
  for (const auto& config : ctx.database().shards) {
    std::cout << fmt::format("  {:<12} {:>5}", config.name, config.id);
    if (const auto* p = sweep.problem(config.name)) {
      std::cout << fmt::format(" {}\n", p->unreachable ? "unreachable" : "not covered (see stderr)");
      continue;
    }
    for (const auto& shard : shards) {
      if (shard.id != config.id) continue;
      std::int64_t held = 0;
      for (const auto& s : shard.summary) {
        std::cout << fmt::format(" {:>10}", s.count);
        held += s.held;
      }
      std::cout << fmt::format(" {:>7}\n", held);
    }
  }
}

void print_text_report(const QueueTotals& t, const std::vector<ShardQueue>& shards, Context& ctx,
                       const ShardSweep& sweep) {
  const bool group = !ctx.database().single();
  if (group)
    std::cout << fmt::format("queue group: {} of {} shards covered; the counts below are their sum\n", shards.size(),
                             ctx.database().shards.size());
  std::cout << fmt::format("{:<14} {:>9} {:>7} {:>8}\n", "STATE", "COUNT", "HELD", "OLDEST");
  for (const auto& s : t.summary)
    std::cout << fmt::format("{} {:<12} {:>9} {:>7} {:>8}\n", static_cast<int>(s.state), common::state_name(s.state),
                             s.count, s.held, age(s.oldest_age_seconds));
  std::cout << fmt::format("deferred (state 3 with failed attempts): {}\n", t.deferred);
  if (!t.top_senders.empty()) {
    std::cout << "top senders in the backlog:\n";
    for (const auto& [sender, n] : t.top_senders) std::cout << fmt::format("  {:>9} {}\n", n, sender);
  }
  if (!t.top_destinations.empty()) {
    std::cout << "top destinations of pending deliveries:\n";
    for (const auto& [domain, n] : t.top_destinations) std::cout << fmt::format("  {:>9} {}\n", n, domain);
  }
  bool any_backed_off = false;
  for (const auto& shard : shards) any_backed_off |= !shard.backed_off.empty();
  if (any_backed_off) {
    // Backoff is learnt per shard (docs/ARCHITECTURE.md §7): each shard's own.
    std::cout << "destinations backed off (not tried until then):\n";
    for (const auto& shard : shards)
      for (const auto& d : shard.backed_off)
        std::cout << fmt::format(
            "  {}{} {} for {} after {} failures: {}\n", group ? "[" + shard.name + "] " : std::string(), d.transport,
            common::printable(d.destination), age(d.seconds_left), d.failures, common::printable(d.last_error));
  }
  // What the listener's backpressure counts ([listener] backlog_quota_*): it
  // sums over the shards as this does.
  if (!t.backlogs.empty()) {
    std::cout << "top backlogs (undelivered messages per backpressure key):\n";
    for (const auto& b : t.backlogs)
      std::cout << fmt::format("  {:>9} {:<13} {}\n", b.count, b.kind, common::printable(b.name));
  }
  if (group) print_shard_table(shards, ctx, sweep);
}

}  // namespace

int show_queue(Context& ctx, int top) {
  // A key can lead the sum while leading no shard: with several shards each
  // one's top lists are read whole (a transfer, not a second scan).
  const int fetch = ctx.database().shards.size() == 1 ? top : std::numeric_limits<int>::max();
  std::vector<ShardQueue> shards;
  ShardSweep sweep(ctx);
  sweep.each([&](const common::ShardConfig& config, pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    ShardQueue q;
    q.name = config.name;
    q.id = config.id;
    q.summary = common::pg::queue_summary(tx);
    q.backlog = common::pg::backlog(tx, fetch);
    q.backed_off = common::pg::backed_off_destinations(tx);
    q.backlogs = common::pg::top_backlogs(tx, fetch);
    shards.push_back(std::move(q));
  });
  auto totals = sum_queues(shards, top);
  if (ctx.json)
    print_json_report(totals, shards, sweep);
  else
    print_text_report(totals, shards, ctx, sweep);
  return sweep.exit_status(kExitOk);
}

}  // namespace wsmtp::ctl
