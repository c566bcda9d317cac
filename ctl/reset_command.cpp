#include "reset_command.h"

#include <iostream>

#include <fmt/format.h>

#include "config/config_file.h"
#include "context.h"
#include "json_output.h"
#include "queue_id.h"
#include "shard_sweep.h"
#include "pg/transitions.h"

namespace wsmtp::ctl {
namespace {

std::optional<common::MsgState> parse_reset_state(const std::string& text) {
  if (text == "2" || text == "ROUTING" || text == "routing") return common::MsgState::routing;
  if (text == "4" || text == "DELIVERING" || text == "delivering") return common::MsgState::delivering;
  return std::nullopt;
}

// Validates the flags; throws UsageError naming the bad one.
common::pg::ResetFilter reset_filter(const ResetArgs& a) {
  common::pg::ResetFilter f;
  if (a.id > 0) f.id = a.id;
  if (!a.state.empty()) {
    f.state = parse_reset_state(a.state);
    if (!f.state)
      throw UsageError(fmt::format("--state {}: only ROUTING (2) and DELIVERING (4) can be reset", a.state));
  }
  if (!a.older_than.empty()) {
    f.older_than = common::parse_duration(a.older_than);
    if (!f.older_than)
      throw UsageError(fmt::format("--older-than {}: expected a duration like 90s, 10m, 2h", a.older_than));
  }
  if (!a.sender.empty()) f.sender = a.sender == "<>" ? std::string() : a.sender;
  if (!f.id && !f.state && !f.older_than && !f.sender)
    throw UsageError("reset needs --id, --state, --older-than or --sender");
  f.force = a.force;
  f.limit = a.limit;
  return f;
}

struct Tally {
  std::size_t candidates = 0;
  int live_skipped = 0;
  Json messages = Json::array();
  std::vector<std::int64_t> moved;
};

// One shard's reset in its own transaction, at most f.limit messages.
void reset_shard(pqxx::connection& conn, const std::string& shard, const common::pg::ResetFilter& f, bool dry_run,
                 bool json, Tally& t) {
  pqxx::work tx(conn);
  // Candidates including live leases, to explain what --force would add.
  auto all_filter = f;
  all_filter.force = true;
  auto all = common::pg::reset_candidates(tx, all_filter);
  t.candidates += all.size();
  for (const auto& c : all) {
    const bool skipped = c.lease_live && !f.force;
    t.live_skipped += skipped;
    t.messages.push_back({{"id", c.msg_id},
                          {"from", std::string(common::state_name(c.from))},
                          {"to", std::string(common::state_name(*common::reset_target(c.from)))},
                          {"lease_owner", c.lease_owner},
                          {"lease_live", c.lease_live},
                          {"skipped", skipped},
                          {"shard", shard}});
    if (json) continue;
    if (skipped)
      std::cout << fmt::format("msg={} unchanged: {} with a live lease of {} (use --force)\n", common::qid(c.msg_id),
                               common::state_name(c.from), c.lease_owner);
    else
      std::cout << fmt::format("{}msg={} {} -> {}{}\n", dry_run ? "would reset " : "reset ", common::qid(c.msg_id),
                               common::state_name(c.from), common::state_name(*common::reset_target(c.from)),
                               c.lease_live ? fmt::format(" (live lease of {})", c.lease_owner) : "");
  }
  if (dry_run) return;  // rolled back: nothing to change
  auto moved = common::pg::reset_messages(tx, f);
  tx.commit();
  t.moved.insert(t.moved.end(), moved.begin(), moved.end());
}

}  // namespace

int reset(Context& ctx, const ResetArgs& a) {
  auto f = reset_filter(a);
  Tally t;
  ShardSweep sweep(ctx);
  auto step = [&](const common::ShardConfig& shard, pqxx::connection& conn) {
    // --limit bounds the whole command, shard after shard.
    auto left = f.limit - static_cast<int>(a.dry_run ? t.candidates : t.moved.size());
    if (left <= 0) return;
    auto shard_filter = f;
    shard_filter.limit = left;
    reset_shard(conn, shard.name, shard_filter, a.dry_run, ctx.json, t);
  };
  if (f.id) {
    const auto* shard = ctx.database().shard_by_id(common::shard_of(*f.id));
    if (!shard)
      throw CommandError(fmt::format("message {}: its queue id names shard id {}, which is not configured",
                                     common::qid(*f.id), common::shard_of(*f.id)));
    sweep.visit(*shard, step);
  } else {
    sweep.each(step);
  }
  if (t.live_skipped && !ctx.json)
    std::cout << fmt::format("skipped {} message(s) whose lease is still live (use --force)\n", t.live_skipped);
  // A dry run reports and changes nothing by request: it exits 0 whatever it found.
  if (a.dry_run) {
    if (ctx.json)
      print_json({{"dry_run", true},
                  {"would_reset", static_cast<int>(t.candidates) - t.live_skipped},
                  {"skipped_live", t.live_skipped},
                  {"messages", t.messages},
                  {"shards", sweep.shards_json()}});
    return sweep.exit_status(kExitOk);
  }
  if (ctx.json)
    print_json({{"dry_run", false},
                {"reset", t.moved.size()},
                {"skipped_live", t.live_skipped},
                {"messages", t.messages},
                {"reset_ids", t.moved},
                {"shards", sweep.shards_json()}});
  else
    std::cout << fmt::format("{} message(s) reset\n", t.moved.size());
  if (!t.moved.empty()) return sweep.exit_status(kExitOk);
  std::string why;
  if (f.id && t.candidates == 0)
    why = fmt::format("message {} does not exist or is not in ROUTING/DELIVERING", common::qid(*f.id));
  else if (t.live_skipped)
    why = fmt::format("nothing reset: {} matching message(s) have a live lease (use --force)", t.live_skipped);
  else
    why = "nothing reset: no message in ROUTING or DELIVERING matches";
  std::cerr << "wsmtpctl: " << why << "\n";
  return sweep.exit_status(kExitFailed);
}

}  // namespace wsmtp::ctl
