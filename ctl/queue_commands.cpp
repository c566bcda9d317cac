// wsmtpctl queue | reap | reset, over every queue shard
#include <iostream>

#include <fmt/format.h>

#include "context.h"
#include "filter_options.h"
#include "json_output.h"
#include "queue_show.h"
#include "reset_command.h"
#include "shard_sweep.h"
#include "reap/reap_pass.h"

namespace wsmtp::ctl {
namespace {

using common::reap::PassSummary;

Json pass_json(const PassSummary& s) {
  return {{"routing_reset", s.routing_reset},
          {"delivering_reset", s.delivering_reset},
          {"held", s.held},
          {"expired_bounced", s.expired_bounced},
          {"aborted_deleted", s.aborted_deleted},
          {"done_deleted", s.done_deleted},
          {"backlog_folded", s.backlog_folded}};
}

std::string pass_text(const PassSummary& s) {
  return fmt::format(
      "leases returned: routing {} delivering {}; held {}; expired and bounced {}; deleted: aborted {} done {}; "
      "backlog rows folded {}",
      s.routing_reset, s.delivering_reset, s.held, s.expired_bounced, s.aborted_deleted, s.done_deleted,
      s.backlog_folded);
}

void add(PassSummary& total, const PassSummary& s) {
  total.routing_reset += s.routing_reset;
  total.delivering_reset += s.delivering_reset;
  total.held += s.held;
  total.expired_bounced += s.expired_bounced;
  total.aborted_deleted += s.aborted_deleted;
  total.done_deleted += s.done_deleted;
  total.backlog_folded += s.backlog_folded;
}

// One reaper pass on each shard in turn (wreaper runs them side by side; here
// an operator waits for one at a time).
int reap(Context& ctx) {
  auto file = common::load_config(ctx.options);
  const auto config = common::reap::read_reaper_config(file);
  const auto queue = common::read_queue_config(file);
  const bool group = !ctx.database().single();
  PassSummary total;
  Json per_shard = Json::object();
  ShardSweep sweep(ctx);
  sweep.each([&](const common::ShardConfig& shard, pqxx::connection& conn) {
    auto s = common::reap::reap_once(conn, config, queue);
    per_shard[shard.name] = pass_json(s);
    if (group && !ctx.json) std::cout << fmt::format("shard {}: {}\n", shard.name, pass_text(s));
    add(total, s);
  });
  if (ctx.json) {
    auto out = pass_json(total);
    Json shards = sweep.shards_json();
    for (auto& entry : shards)
      if (per_shard.contains(entry["name"])) entry["pass"] = per_shard[entry["name"].get<std::string>()];
    out["shards"] = shards;
    print_json(out);
  } else {
    std::cout << (group ? "all shards: " : "") << pass_text(total) << "\n";
  }
  return sweep.exit_status(kExitOk);
}

}  // namespace

void add_queue_commands(CLI::App& app, Context& ctx) {
  auto top = std::make_shared<int>(10);
  auto* queue = app.add_subcommand(
      "queue",
      "counts, held and oldest age per state; deferred; top senders and destinations (summed over the shards, "
      "and each shard's counts)");
  queue->add_option("--top", *top, "how many top senders/destinations")->check(CLI::Range(1, 1000));
  queue->callback([&ctx, top] { ctx.action = [&ctx, top] { return show_queue(ctx, *top); }; });

  auto once = std::make_shared<bool>(false);
  auto* rp =
      app.add_subcommand("reap", "run one reaper pass now on every shard (expired leases, expired mail, old messages)");
  rp->add_flag("--once", *once, "one pass, then exit (the only mode; wreaper is the daemon)")->required();
  rp->callback([&ctx, once] { ctx.action = [&ctx] { return reap(ctx); }; });

  auto args = std::make_shared<ResetArgs>();  // co-owned by the subcommand's callbacks
  auto* rs = app.add_subcommand("reset", "move stuck messages back one state (2->1, 4->3) to be reprocessed");
  rs->add_option("--id", args->id, "queue id")->transform(queue_id_arg());
  rs->add_option("--state", args->state, "ROUTING (2) or DELIVERING (4)");
  rs->add_option("--older-than", args->older_than, "only messages in their state longer than this (e.g. 10m)");
  rs->add_option("--sender", args->sender, "only messages from this envelope sender ('<>' for the null sender)");
  rs->add_flag("--dry-run,-n", args->dry_run, "show what would change, change nothing");
  rs->add_flag("--force", args->force, "also reset messages whose lease is still live");
  rs->add_option("--limit", args->limit, "at most this many messages, over all shards")->check(CLI::Range(1, 1000000));
  rs->callback([&ctx, args] { ctx.action = [&ctx, args] { return reset(ctx, *args); }; });
}

}  // namespace wsmtp::ctl
