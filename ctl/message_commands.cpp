// wsmtpctl list | show | hold | release | delete | retry | bounce. list searches
// every shard; show goes to the shard its queue id names; the actions are
// message_actions.cpp's.
#include <algorithm>
#include <iostream>
#include <string_view>

#include <fmt/format.h>

#include "context.h"
#include "filter_options.h"
#include "json_output.h"
#include "message_actions.h"
#include "printable.h"
#include "queue_id.h"
#include "shard_sweep.h"
#include "db/message_filter.h"
#include "db/message_view.h"
#include "pg/operator_actions.h"
#include "pg/transitions_hold.h"

namespace wsmtp::ctl {
namespace {

using common::pg::MessageDetail;

Json message_json(const MessageDetail& m) {
  Json j = {{"id", m.id},
            {"state", static_cast<int>(m.state)},
            {"state_name", std::string(common::state_name(m.state))},
            {"size", m.size},
            {"created_at", m.created_at},
            {"received_at", m.received_at},
            {"routing_at", m.routing_at},
            {"routed_at", m.routed_at},
            {"delivering_at", m.delivering_at},
            {"done_at", m.done_at},
            {"state_changed_at", m.state_changed_at},
            {"next_attempt_at", m.next_attempt_at},
            {"lease_owner", m.lease_owner},
            {"lease_expires", m.lease_expires},
            {"expired_claims", m.expired_claims},
            {"held", m.held},
            {"recipients", m.recipients},
            {"pending", m.pending},
            {"delivered", m.delivered},
            {"bounced", m.bounced}};
  // Text that came from the network may be any bytes.
  put_bytes(j, "sender", m.envelope_from);
  put_bytes(j, "client", m.client_addr);
  put_bytes(j, "helo", m.client_helo);
  put_bytes(j, "held_reason", m.held_reason);
  put_bytes(j, "last_error", m.last_error);
  return j;
}

// Line by line, so a header section or body keeps its shape and only what is
// inside a line is escaped (strangers' text: common/printable.h).
void print_lines(std::string_view text) {
  for (std::string_view rest = text; !rest.empty();) {
    auto end = rest.find('\n');
    auto line = rest.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::cout << common::printable(line) << "\n";
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  }
}

void print_detail(pqxx::transaction_base& tx, const MessageDetail& m) {
  // Senders, helo names, headers and remote replies are strangers' text: a
  // terminal must not obey escape sequences in them (--json escapes its own way).
  auto line = [](const char* label, const std::string& value) {
    if (!value.empty()) std::cout << fmt::format("{:<16} {}\n", label, common::printable(value));
  };
  std::cout << fmt::format("{:<16} {}\n{:<16} {} ({})\n", "message", common::qid(m.id), "state",
                           common::state_name(m.state), static_cast<int>(m.state));
  line("sender", m.envelope_from.empty() ? "<>" : m.envelope_from);
  line("client", m.client_addr + (m.client_helo.empty() ? "" : " helo=" + m.client_helo));
  line("received by", m.received_by);
  std::cout << fmt::format("{:<16} {}\n", "size", m.size);
  line("created", m.created_at);
  line("received", m.received_at);
  line("routing", m.routing_at);
  line("routed", m.routed_at);
  line("delivering", m.delivering_at);
  line("done", m.done_at);
  line("next attempt", m.state == common::MsgState::routed ? m.next_attempt_at : "");
  line("lease", m.lease_owner.empty() ? "" : m.lease_owner + " until " + m.lease_expires);
  if (m.expired_claims) std::cout << fmt::format("{:<16} {}\n", "expired claims", m.expired_claims);
  line("held", m.held ? (m.held_reason.empty() ? "yes" : "yes: " + m.held_reason) : "");
  line("last error", m.last_error);
  for (const auto& r : common::pg::load_envelope_recipients(tx, m.id)) line("recipient", r);
  for (const auto& d : common::pg::load_deliveries(tx, m.id)) {
    std::cout << common::printable(
                     fmt::format("delivery {:<7} {} -> {} via {} {} [{}] attempts={}{}{}", d.id, d.original_rcpt,
                                 d.recipient, d.transport, d.destination, d.status, d.attempts,
                                 d.status == "pending" ? " next=" + d.next_attempt_at : " at " + d.final_at,
                                 d.last_error.empty() ? "" : " error: " + d.last_error))
              << "\n";
  }
  auto headers = common::pg::load_headers(tx, m.id);
  if (headers.empty()) return;
  std::cout << "headers:\n";
  print_lines(headers);
}

// Where a named message lives: the shard its queue id names. Throws
// CommandError when that shard is not configured.
const common::ShardConfig& shard_of_message(Context& ctx, std::int64_t id) {
  const auto* shard = ctx.database().shard_by_id(common::shard_of(id));
  if (!shard)
    throw CommandError(fmt::format("message {}: its queue id names shard id {}, which is not configured",
                                   common::qid(id), common::shard_of(id)));
  return *shard;
}

struct Found {
  std::string shard;
  MessageDetail message;
};

int list(Context& ctx, const FilterArgs& args) {
  auto filter = to_filter(args, false);
  const auto& database = ctx.database();
  auto named = ids_by_shard(args.ids);
  std::vector<Found> found;
  ShardSweep sweep(ctx);
  for (const auto& shard : database.shards) {
    auto selected = filter_for_shard(filter, named, shard.id);
    if (!selected) continue;
    const auto& shard_filter = *selected;
    sweep.visit(shard, [&](const common::ShardConfig&, pqxx::connection& conn) {
      pqxx::read_transaction tx(conn);
      for (auto& m : common::pg::load_messages(tx, common::pg::select_messages(tx, shard_filter)))
        found.push_back({shard.name, std::move(m)});
    });
  }
  if (database.shards.size() > 1) {
    // Each shard gave its oldest --limit; ids order within a shard only.
    std::stable_sort(found.begin(), found.end(),
                     [](const Found& a, const Found& b) { return a.message.created_at < b.message.created_at; });
    if (found.size() > static_cast<std::size_t>(filter.limit)) found.resize(static_cast<std::size_t>(filter.limit));
  }
  if (ctx.json) {
    Json out = Json::array();
    for (const auto& f : found) {
      auto j = message_json(f.message);
      j["shard"] = f.shard;
      out.push_back(std::move(j));
    }
    print_json(out);
    return sweep.exit_status(kExitOk);
  }
  const bool group = !database.single();
  // A shard's queue ids have fifteen digits and more (queue_id.h).
  const int id_width = group ? 15 : 10;
  std::cout << fmt::format("{:>{}} {}{:<11} {:<20} {:>9} {:>5} {:>4} {}\n", "ID", id_width,
                           group ? fmt::format("{:<12} ", "SHARD") : "", "STATE", "CREATED", "SIZE", "RCPTS", "HELD",
                           "SENDER");
  for (const auto& [shard, m] : found)
    std::cout << fmt::format("{:>{}} {}{:<11} {:<20} {:>9} {:>5} {:>4} {}\n", common::qid(m.id), id_width,
                             group ? fmt::format("{:<12} ", shard) : "", common::state_name(m.state), m.created_at,
                             m.size, m.recipients, m.held ? "yes" : "",
                             m.envelope_from.empty() ? "<>" : common::printable(m.envelope_from));
  return sweep.exit_status(kExitOk);
}

// `show --body`: the start of the body after the header section, so an
// operator sees what a milter put there (a replaced body) without a tool.
constexpr std::size_t kShownBody = 64 * 1024;

std::string body_start(pqxx::transaction_base& tx, std::int64_t id) {
  return common::pg::load_body_start(tx, id, kShownBody);
}

void print_body(pqxx::transaction_base& tx, const MessageDetail& m) {
  auto body = body_start(tx, m.id);
  std::cout << "body:\n";
  print_lines(body);
  if (body.size() == kShownBody) std::cout << fmt::format("(only the first {} bytes are shown)\n", kShownBody);
}

void print_show_json(pqxx::transaction_base& tx, const MessageDetail& m, const common::ShardConfig& shard,
                     bool with_body) {
  auto out = message_json(m);
  Json deliveries = Json::array();
  for (const auto& d : common::pg::load_deliveries(tx, m.id)) {
    Json dj = {{"id", d.id},
               {"transport", d.transport},
               {"status", d.status},
               {"attempts", d.attempts},
               {"next_attempt_at", d.next_attempt_at},
               {"final_at", d.final_at}};
    put_bytes(dj, "recipient", d.recipient);
    put_bytes(dj, "original_rcpt", d.original_rcpt);
    put_bytes(dj, "destination", d.destination);
    put_bytes(dj, "last_error", d.last_error);
    deliveries.push_back(std::move(dj));
  }
  Json rcpts = Json::array();
  for (const auto& r : common::pg::load_envelope_recipients(tx, m.id)) rcpts.push_back(r);
  out["envelope_recipients"] = rcpts;
  out["deliveries"] = deliveries;
  // 8-bit headers without a charset are common: "headers" is always valid
  // JSON (bad bytes as U+FFFD); "headers_base64" then has the exact bytes.
  put_bytes(out, "headers", common::pg::load_headers(tx, m.id));
  if (with_body) put_bytes(out, "body", body_start(tx, m.id));
  out["shard"] = shard.name;
  print_json(out);
}

int show(Context& ctx, std::int64_t id, bool with_body) {
  // The queue id names the shard: no search.
  const auto& shard = shard_of_message(ctx, id);
  bool exists = false;
  ShardSweep sweep(ctx);
  sweep.visit(shard, [&](const common::ShardConfig&, pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    auto messages = common::pg::load_messages(tx, {id});
    if (messages.empty()) return;
    exists = true;
    if (ctx.json) return print_show_json(tx, messages[0], shard, with_body);
    if (!ctx.database().single()) std::cout << fmt::format("{:<16} {} (id {})\n", "shard", shard.name, shard.id);
    print_detail(tx, messages[0]);
    if (with_body) print_body(tx, messages[0]);
  });
  if (!sweep.problems().empty()) return sweep.exit_status(kExitFailed);
  if (!exists)
    throw CommandError(ctx.database().single() ? fmt::format("no message {}", common::qid(id))
                                               : fmt::format("no message {} in shard {}", common::qid(id), shard.name));
  return kExitOk;
}

}  // namespace

void add_message_commands(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<FilterArgs>();  // co-owned by the callbacks below; one subcommand runs
  auto* ls = app.add_subcommand("list", "list messages matching filters");
  add_filter_options(ls, *args, false);
  ls->callback([&ctx, args] { ctx.action = [&ctx, args] { return list(ctx, *args); }; });

  auto id = std::make_shared<std::int64_t>(0);
  auto* sh = app.add_subcommand("show", "envelope, headers, deliveries and state times of one message");
  sh->add_option("id", *id, "queue id (as in the logs, the Received: header and the 250 reply)")
      ->required()
      ->transform(queue_id_arg());
  auto with_body = std::make_shared<bool>(false);
  sh->add_flag("--body", *with_body, "also the start of the body (the first 64 KiB after the header section)");
  sh->callback([&ctx, id, with_body] { ctx.action = [&ctx, id, with_body] { return show(ctx, *id, *with_body); }; });

  auto reason = std::make_shared<std::string>("held by operator");
  auto* hold = app.add_subcommand("hold", "stop processing messages until released");
  add_filter_options(hold, *args, true);
  hold->add_option("--reason", *reason, "why (shown by show)");
  hold->callback([&ctx, args, reason] {
    ctx.action = [&ctx, args, reason] {
      return run_flag_action(ctx, *args, {"hold", "held", Verb::hold, [&](auto& tx, const auto& ids) {
                                            return common::pg::hold_messages(tx, ids, *reason);
                                          }});
    };
  });
  auto* rel = app.add_subcommand("release", "release held messages");
  add_filter_options(rel, *args, true);
  rel->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      return run_flag_action(ctx, *args, {"release", "released", Verb::release, [](auto& tx, const auto& ids) {
                                            return common::pg::release_messages(tx, ids);
                                          }});
    };
  });
  auto* del = app.add_subcommand("delete", "delete messages without delivering or bouncing them");
  add_filter_options(del, *args, true);
  del->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      return run_flag_action(ctx, *args, {"delete", "deleted", Verb::remove, [](auto& tx, const auto& ids) {
                                            return common::pg::delete_messages(tx, ids);
                                          }});
    };
  });
  auto* retry = app.add_subcommand("retry", "attempt deferred deliveries now");
  add_filter_options(retry, *args, true);
  retry->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      return run_flag_action(ctx, *args, {"retry", "retrying deliveries", Verb::retry, [](auto& tx, const auto& ids) {
                                            return common::pg::retry_now(tx, ids);
                                          }});
    };
  });
  auto bounce_args = std::make_shared<BounceArgs>();
  auto* bounce_cmd = app.add_subcommand(
      "bounce",
      "give messages up in any state before DONE: every undelivered recipient fails, the sender gets one DSN now, "
      "the message becomes DONE");
  add_filter_options(bounce_cmd, *args, true);
  bounce_cmd->add_option("--reason", bounce_args->reason, "status and text put in the DSN");
  bounce_cmd->add_flag("--force", bounce_args->force,
                       "also messages a deliverer holds a live lease on (it may deliver a copy all the same)");
  bounce_cmd->callback([&ctx, args, bounce_args] {
    ctx.action = [&ctx, args, bounce_args] { return run_bounce(ctx, *args, *bounce_args); };
  });
}

}  // namespace wsmtp::ctl
