#include "message_actions.h"

#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "context.h"
#include "identity.h"
#include "json_output.h"
#include "queue_id.h"
#include "shard_sweep.h"
#include "db/message_filter.h"
#include "pg/operator_actions.h"
#include "pg/transitions_bounce.h"

namespace wsmtp::ctl {
namespace {

// The selection of a bulk action on one shard, locked in tx: the ids that
// exist and match, and an outcome for each named id that does not (so it is
// reported, not lost).
struct Selection {
  std::vector<std::int64_t> ids;
  std::vector<MessageOutcome> missing;
};

Selection select_for_action(pqxx::transaction_base& tx, const common::pg::MessageFilter& filter) {
  Selection s;
  s.ids = common::pg::select_messages(tx, filter, true);
  if (filter.ids.empty()) return s;
  std::vector<std::int64_t> unmatched;
  for (auto id : filter.ids)
    if (std::find(s.ids.begin(), s.ids.end(), id) == s.ids.end()) unmatched.push_back(id);
  auto existing = common::pg::message_snapshots(tx, unmatched);
  for (auto id : unmatched) {
    bool exists = std::any_of(existing.begin(), existing.end(), [id](const auto& m) { return m.id == id; });
    s.missing.push_back({id, false, exists ? "does not match the filters" : "no such message"});
  }
  return s;
}

// What an action does on one shard, in tx; it fills the shard's own report.
using ShardStep = std::function<void(pqxx::transaction_base& tx, const Selection& selection, ActionReport& report)>;

// Runs step on every shard the selection can reach; a shard's outcomes join
// the report only once its transaction committed.
int across_shards(Context& ctx, const FilterArgs& args, const char* action_name, const char* verb,
                  const ShardStep& step) {
  const auto filter = to_filter(args, true);
  const auto& database = ctx.database();
  ActionReport report{action_name, 0, {}};
  auto named = ids_by_shard(args.ids);
  for (const auto& [shard_id, ids] : named)
    if (!database.shard_by_id(shard_id))
      for (auto id : ids)
        report.messages.push_back(
            {id, false, fmt::format("its queue id names shard id {}, which is not configured", shard_id)});
  ShardSweep sweep(ctx);
  int left = filter.limit;  // --limit bounds the whole command, shard after shard
  for (const auto& shard : database.shards) {
    auto selected = filter_for_shard(filter, named, shard.id);
    if (!selected) continue;
    auto shard_filter = *selected;
    if (left <= 0) {
      for (auto id : shard_filter.ids) report.messages.push_back({id, false, "not selected: --limit reached"});
      continue;
    }
    shard_filter.limit = left;
    ActionReport part{action_name, 0, {}};
    bool covered = sweep.visit(shard, [&](const common::ShardConfig&, pqxx::connection& conn) {
      part = ActionReport{action_name, 0, {}};
      pqxx::work tx(conn);
      auto selection = select_for_action(tx, shard_filter);
      part.selected = selection.ids.size();
      part.messages = selection.missing;
      step(tx, selection, part);
      tx.commit();
    });
    if (!covered) {
      for (auto id : shard_filter.ids)
        report.messages.push_back(
            {id, false, fmt::format("shard {} not covered: {}", shard.name, sweep.problem(shard.name)->error)});
      continue;
    }
    left -= static_cast<int>(part.selected);
    report.selected += part.selected;
    report.messages.insert(report.messages.end(), part.messages.begin(), part.messages.end());
  }
  if (ctx.json) {
    auto out = report.to_json();
    if (!database.single()) out["shards"] = sweep.shards_json();
    print_json(out);
  } else {
    if (report.selected == 0 && report.messages.empty()) std::cout << "no matching messages\n";
    for (const auto& m : report.messages)
      if (!m.changed || report.action == "bounce")
        std::cout << fmt::format("msg={} {}{}\n", common::qid(m.id), m.changed ? "" : "unchanged: ", m.detail);
    std::cout << fmt::format("{} {} of {} selected message(s)\n", verb, report.changed(), report.selected);
  }
  int status = report.exit_status(args.ids);
  if (status != kExitOk)
    std::cerr << fmt::format("wsmtpctl: {}: {}\n", report.action,
                             report.changed() == 0 ? "nothing changed" : "some named messages did not change");
  return sweep.exit_status(status);
}

// The host name a DSN names as its Reporting-MTA: the deliverer's, as its own
// DSNs do ([deliver] hostname), else this host's.
std::string reporting_mta(const Context& ctx) {
  auto file = common::load_config(ctx.options);
  if (const auto* section = file.section("deliver")) {
    auto it = section->find("hostname");
    if (it != section->end() && common::is_valid_domain(it->second.value)) return it->second.value;
  }
  return common::host_name();
}

}  // namespace

int run_flag_action(Context& ctx, const FilterArgs& args, const FlagAction& action) {
  return across_shards(
      ctx, args, action.name, action.verb,
      [&](pqxx::transaction_base& tx, const Selection& selection, ActionReport& report) {
        auto changed = selection.ids.empty() ? std::vector<std::int64_t>{} : action.apply(tx, selection.ids);
        std::vector<std::int64_t> unchanged;
        for (auto id : selection.ids) {
          if (std::find(changed.begin(), changed.end(), id) != changed.end())
            report.messages.push_back({id, true, action.verb});
          else
            unchanged.push_back(id);
        }
        for (const auto& m : common::pg::message_snapshots(tx, unchanged))
          report.messages.push_back({m.id, false, unchanged_reason(action.kind, m)});
        for (auto id : unchanged)  // gone meanwhile (a delete that raced another)
          if (std::none_of(report.messages.begin(), report.messages.end(), [id](const auto& m) { return m.id == id; }))
            report.messages.push_back({id, false, "no longer exists"});
      });
}

int run_bounce(Context& ctx, const FilterArgs& args, const BounceArgs& bounce) {
  common::pg::BounceOptions options;
  options.reason = bounce.reason;
  options.force = bounce.force;
  options.reporting_mta = reporting_mta(ctx);
  // The DSN is created by bounce_messages in tx: on the bounced message's shard.
  return across_shards(ctx, args, "bounce", "bounced",
                       [&](pqxx::transaction_base& tx, const Selection& selection, ActionReport& report) {
                         for (const auto& r : common::pg::bounce_messages(tx, selection.ids, options))
                           report.messages.push_back(describe_bounce(r));
                       });
}

}  // namespace wsmtp::ctl
