// wsmtpctl queue | reset
#include <iostream>

#include <fmt/format.h>

#include "context.h"
#include "filter_options.h"
#include "json_output.h"
#include "printable.h"
#include "queue_id.h"
#include "db/message_view.h"
#include "db/queue_report.h"
#include "reap/reap_pass.h"
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

Json pairs_json(const std::vector<std::pair<std::string, std::int64_t>>& pairs, const char* key) {
  Json out = Json::array();
  for (const auto& [name, count] : pairs) {
    Json entry = {{"count", count}};
    put_bytes(entry, key, name);
    out.push_back(std::move(entry));
  }
  return out;
}

int show_queue(Context& ctx, int top) {
  pqxx::read_transaction tx(ctx.db());
  auto summary = common::pg::queue_summary(tx);
  auto backlog = common::pg::backlog(tx, top);
  auto backed_off = common::pg::backed_off_destinations(tx);
  auto backlogs = common::pg::top_backlogs(tx, top);
  if (ctx.json) {
    Json destinations = Json::array();
    for (const auto& d : backed_off)
      destinations.push_back({{"transport", d.transport},
                              {"destination", d.destination},
                              {"failures", d.failures},
                              {"seconds_left", static_cast<std::int64_t>(d.seconds_left)},
                              {"last_error", d.last_error}});
    Json top_backlogs = Json::array();
    for (const auto& b : backlogs) {
      Json entry = {{"kind", b.kind}, {"count", b.count}};
      put_bytes(entry, "key", b.name);
      top_backlogs.push_back(std::move(entry));
    }
    Json states = Json::array();
    for (const auto& st : summary)
      states.push_back({{"state", static_cast<int>(st.state)},
                        {"name", std::string(common::state_name(st.state))},
                        {"count", st.count},
                        {"held", st.held},
                        {"oldest_seconds", static_cast<std::int64_t>(st.oldest_age_seconds)}});
    print_json({{"states", states},
                {"deferred", backlog.deferred_messages},
                {"top_senders", pairs_json(backlog.top_senders, "sender")},
                {"top_destinations", pairs_json(backlog.top_destinations, "domain")},
                {"backed_off_destinations", destinations},
                {"top_backlogs", top_backlogs}});
    return kExitOk;
  }
  std::cout << fmt::format("{:<14} {:>9} {:>7} {:>8}\n", "STATE", "COUNT", "HELD", "OLDEST");
  for (const auto& s : summary)
    std::cout << fmt::format("{} {:<12} {:>9} {:>7} {:>8}\n", static_cast<int>(s.state), common::state_name(s.state),
                             s.count, s.held, age(s.oldest_age_seconds));
  std::cout << fmt::format("deferred (state 3 with failed attempts): {}\n", backlog.deferred_messages);
  if (!backlog.top_senders.empty()) {
    std::cout << "top senders in the backlog:\n";
    for (const auto& [sender, n] : backlog.top_senders) std::cout << fmt::format("  {:>9} {}\n", n, sender);
  }
  if (!backlog.top_destinations.empty()) {
    std::cout << "top destinations of pending deliveries:\n";
    for (const auto& [domain, n] : backlog.top_destinations) std::cout << fmt::format("  {:>9} {}\n", n, domain);
  }
  if (!backed_off.empty()) {
    std::cout << "destinations backed off (not tried until then):\n";
    for (const auto& d : backed_off)
      std::cout << fmt::format("  {} {} for {} after {} failures: {}\n", d.transport, common::printable(d.destination),
                               age(d.seconds_left), d.failures, common::printable(d.last_error));
  }
  // What the listener's backpressure counts ([listener] backlog_quota_*).
  if (!backlogs.empty()) {
    std::cout << "top backlogs (undelivered messages per backpressure key):\n";
    for (const auto& b : backlogs)
      std::cout << fmt::format("  {:>9} {:<13} {}\n", b.count, b.kind, common::printable(b.name));
  }
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
  std::string sender;
  bool dry_run = false;
  bool force = false;
  int limit = 10000;
};

// Validates the flags; throws CommandError naming the bad one.
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

int reset(Context& ctx, const ResetArgs& a) {
  auto f = reset_filter(a);
  pqxx::work tx(ctx.db());
  // Candidates including live leases, to explain what --force would add.
  auto all_filter = f;
  all_filter.force = true;
  auto all = common::pg::reset_candidates(tx, all_filter);
  int live_skipped = 0;
  Json messages = Json::array();
  for (const auto& c : all) {
    const bool skipped = c.lease_live && !f.force;
    live_skipped += skipped;
    messages.push_back({{"id", c.msg_id},
                        {"from", std::string(common::state_name(c.from))},
                        {"to", std::string(common::state_name(*common::reset_target(c.from)))},
                        {"lease_owner", c.lease_owner},
                        {"lease_live", c.lease_live},
                        {"skipped", skipped}});
    if (ctx.json) continue;
    if (skipped)
      std::cout << fmt::format("msg={} unchanged: {} with a live lease of {} (use --force)\n", common::qid(c.msg_id),
                               common::state_name(c.from), c.lease_owner);
    else
      std::cout << fmt::format("{}msg={} {} -> {}{}\n", a.dry_run ? "would reset " : "reset ", common::qid(c.msg_id),
                               common::state_name(c.from), common::state_name(*common::reset_target(c.from)),
                               c.lease_live ? fmt::format(" (live lease of {})", c.lease_owner) : "");
  }
  if (live_skipped && !ctx.json)
    std::cout << fmt::format("skipped {} message(s) whose lease is still live (use --force)\n", live_skipped);
  // A dry run reports and changes nothing by request: it exits 0 whatever it found.
  if (a.dry_run) {
    if (ctx.json)
      print_json({{"dry_run", true},
                  {"would_reset", static_cast<int>(all.size()) - live_skipped},
                  {"skipped_live", live_skipped},
                  {"messages", messages}});
    return kExitOk;
  }
  auto moved = common::pg::reset_messages(tx, f);
  tx.commit();
  if (ctx.json)
    print_json({{"dry_run", false},
                {"reset", moved.size()},
                {"skipped_live", live_skipped},
                {"messages", messages},
                {"reset_ids", moved}});
  else
    std::cout << fmt::format("{} message(s) reset\n", moved.size());
  if (!moved.empty()) return kExitOk;
  if (f.id && all.empty())
    throw CommandError(fmt::format("message {} does not exist or is not in ROUTING/DELIVERING", common::qid(*f.id)));
  if (live_skipped)
    throw CommandError(
        fmt::format("nothing reset: {} matching message(s) have a live lease (use --force)", live_skipped));
  throw CommandError("nothing reset: no message in ROUTING or DELIVERING matches");
}

}  // namespace

void add_queue_commands(CLI::App& app, Context& ctx) {
  auto top = std::make_shared<int>(10);
  auto* queue =
      app.add_subcommand("queue", "counts, held and oldest age per state; deferred; top senders and destinations");
  queue->add_option("--top", *top, "how many top senders/destinations")->check(CLI::Range(1, 1000));
  queue->callback([&ctx, top] { ctx.action = [&ctx, top] { return show_queue(ctx, *top); }; });

  auto once = std::make_shared<bool>(false);
  auto* reap = app.add_subcommand("reap", "run one reaper pass now (expired leases, expired mail, old messages)");
  reap->add_flag("--once", *once, "one pass, then exit (the only mode; wreaper is the daemon)")->required();
  reap->callback([&ctx, once] {
    ctx.action = [&ctx] {
      auto file = common::load_config(ctx.options);
      auto s =
          common::reap::reap_once(ctx.db(), common::reap::read_reaper_config(file), common::read_queue_config(file));
      if (ctx.json)
        print_json({{"routing_reset", s.routing_reset},
                    {"delivering_reset", s.delivering_reset},
                    {"held", s.held},
                    {"expired_bounced", s.expired_bounced},
                    {"aborted_deleted", s.aborted_deleted},
                    {"done_deleted", s.done_deleted},
                    {"backlog_folded", s.backlog_folded}});
      else
        std::cout << fmt::format(
            "leases returned: routing {} delivering {}; held {}; expired and bounced {}; deleted: aborted {} done {}; "
            "backlog rows folded {}\n",
            s.routing_reset, s.delivering_reset, s.held, s.expired_bounced, s.aborted_deleted, s.done_deleted,
            s.backlog_folded);
      return kExitOk;
    };
  });

  auto args = std::make_shared<ResetArgs>();  // co-owned by the subcommand's callbacks
  auto* rs = app.add_subcommand("reset", "move stuck messages back one state (2->1, 4->3) to be reprocessed");
  rs->add_option("--id", args->id, "queue id")->transform(queue_id_arg());
  rs->add_option("--state", args->state, "ROUTING (2) or DELIVERING (4)");
  rs->add_option("--older-than", args->older_than, "only messages in their state longer than this (e.g. 10m)");
  rs->add_option("--sender", args->sender, "only messages from this envelope sender ('<>' for the null sender)");
  rs->add_flag("--dry-run,-n", args->dry_run, "show what would change, change nothing");
  rs->add_flag("--force", args->force, "also reset messages whose lease is still live");
  rs->add_option("--limit", args->limit, "at most this many messages")->check(CLI::Range(1, 1000000));
  rs->callback([&ctx, args] { ctx.action = [&ctx, args] { return reset(ctx, *args); }; });
}

}  // namespace wsmtp::ctl
