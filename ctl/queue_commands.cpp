// wsmtpctl queue | reset
#include <iostream>

#include <fmt/format.h>

#include "context.h"
#include "pg/queue_report.h"
#include "pg/transitions.h"

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

int show_queue(Context& ctx) {
  pqxx::read_transaction tx(ctx.db());
  auto summary = common::pg::queue_summary(tx);
  if (ctx.json) {
    std::string out = R"({"states":[)";
    for (std::size_t i = 0; i < summary.size(); ++i) {
      const auto& s = summary[i];
      out += fmt::format(R"({}{{"state":{},"name":"{}","count":{},"held":{},"oldest_seconds":{:.0f}}})", i ? "," : "",
                         static_cast<int>(s.state), common::state_name(s.state), s.count, s.held,
                         s.oldest_age_seconds);
    }
    std::cout << out << "]}\n";
    return kExitOk;
  }
  std::cout << fmt::format("{:<14} {:>9} {:>7} {:>8}\n", "STATE", "COUNT", "HELD", "OLDEST");
  for (const auto& s : summary)
    std::cout << fmt::format("{} {:<12} {:>9} {:>7} {:>8}\n", static_cast<int>(s.state), common::state_name(s.state),
                             s.count, s.held, age(s.oldest_age_seconds));
  return kExitOk;
}

std::optional<common::MsgState> parse_reset_state(const std::string& text) {
  if (text == "2" || text == "ROUTING" || text == "routing") return common::MsgState::routing;
  if (text == "4" || text == "DELIVERING" || text == "delivering") return common::MsgState::delivering;
  return std::nullopt;
}

struct ResetArgs {
  std::int64_t id = 0;
  std::string state;
  std::string older_than;
  bool dry_run = false;
  bool force = false;
  int limit = 10000;
};

int reset(Context& ctx, const ResetArgs& a) {
  common::pg::ResetFilter f;
  if (a.id > 0) f.id = a.id;
  if (!a.state.empty()) {
    f.state = parse_reset_state(a.state);
    if (!f.state)
      throw CommandError(fmt::format("--state {}: only ROUTING (2) and DELIVERING (4) can be reset", a.state));
  }
  if (!a.older_than.empty()) {
    f.older_than = common::parse_duration(a.older_than);
    if (!f.older_than) throw CommandError(fmt::format("--older-than {}: expected a duration like 90s, 10m, 2h", a.older_than));
  }
  if (!f.id && !f.state && !f.older_than) throw CommandError("reset needs --id, --state or --older-than");
  f.force = a.force;
  f.limit = a.limit;
  pqxx::work tx(ctx.db());
  // Candidates including live leases, to explain what --force would add.
  auto all = common::pg::reset_candidates(tx, {f.id, f.state, f.older_than, true, f.limit});
  int live_skipped = 0;
  for (const auto& c : all) {
    if (c.lease_live && !f.force) {
      ++live_skipped;
      continue;
    }
    std::cout << fmt::format("{}msg={} {} -> {}{}\n", a.dry_run ? "would reset " : "reset ", c.msg_id,
                             common::state_name(c.from), common::state_name(*common::reset_target(c.from)),
                             c.lease_live ? fmt::format(" (live lease of {})", c.lease_owner) : "");
  }
  if (live_skipped)
    std::cout << fmt::format("skipped {} message(s) whose lease is still live (use --force)\n", live_skipped);
  if (a.dry_run) return kExitOk;
  auto moved = common::pg::reset_messages(tx, f);
  tx.commit();
  std::cout << fmt::format("{} message(s) reset\n", moved.size());
  if (f.id && moved.empty()) {
    if (all.empty()) throw CommandError(fmt::format("message {} does not exist or is not in ROUTING/DELIVERING", *f.id));
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

void add_queue_commands(CLI::App& app, Context& ctx) {
  auto* queue = app.add_subcommand("queue", "message counts and oldest age per state");
  queue->callback([&ctx] { ctx.action = [&ctx] { return show_queue(ctx); }; });

  auto args = std::make_shared<ResetArgs>();  // co-owned by the subcommand's callbacks
  auto* rs = app.add_subcommand("reset", "move stuck messages back one state (2->1, 4->3) to be reprocessed");
  rs->add_option("--id", args->id, "message id")->check(CLI::PositiveNumber);
  rs->add_option("--state", args->state, "ROUTING (2) or DELIVERING (4)");
  rs->add_option("--older-than", args->older_than, "only messages in their state longer than this (e.g. 10m)");
  rs->add_flag("--dry-run,-n", args->dry_run, "show what would change, change nothing");
  rs->add_flag("--force", args->force, "also reset messages whose lease is still live");
  rs->add_option("--limit", args->limit, "at most this many messages")->check(CLI::Range(1, 1000000));
  rs->callback([&ctx, args] { ctx.action = [&ctx, args] { return reset(ctx, *args); }; });
}

}  // namespace wsmtp::ctl
