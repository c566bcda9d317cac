// wsmtpctl list | show | hold | release | delete | retry | bounce
#include <algorithm>
#include <iostream>
#include <string_view>

#include <fmt/format.h>

#include "action_report.h"
#include "address.h"
#include "context.h"
#include "filter_options.h"
#include "identity.h"
#include "json_output.h"
#include "printable.h"
#include "queue_id.h"
#include "db/message_view.h"
#include "pg/operator_actions.h"
#include "pg/transitions_bounce.h"
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

int list(Context& ctx, const FilterArgs& args) {
  auto filter = to_filter(args, false);
  pqxx::read_transaction tx(ctx.db());
  auto messages = common::pg::load_messages(tx, common::pg::select_messages(tx, filter));
  if (ctx.json) {
    Json out = Json::array();
    for (const auto& m : messages) out.push_back(message_json(m));
    print_json(out);
    return kExitOk;
  }
  std::cout << fmt::format("{:>10} {:<11} {:<20} {:>9} {:>5} {:>4} {}\n", "ID", "STATE", "CREATED", "SIZE", "RCPTS",
                           "HELD", "SENDER");
  for (const auto& m : messages)
    std::cout << fmt::format("{:>10} {:<11} {:<20} {:>9} {:>5} {:>4} {}\n", common::qid(m.id),
                             common::state_name(m.state), m.created_at, m.size, m.recipients, m.held ? "yes" : "",
                             m.envelope_from.empty() ? "<>" : common::printable(m.envelope_from));
  return kExitOk;
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
  // Line by line, so the header section keeps its shape and only what is inside a line is escaped.
  for (std::string_view rest = headers; !rest.empty();) {
    auto end = rest.find('\n');
    auto text = rest.substr(0, end);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    std::cout << common::printable(text) << "\n";
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  }
}

int show(Context& ctx, std::int64_t id) {
  pqxx::read_transaction tx(ctx.db());
  auto messages = common::pg::load_messages(tx, {id});
  if (messages.empty()) throw CommandError(fmt::format("no message {}", common::qid(id)));
  if (ctx.json) {
    auto out = message_json(messages[0]);
    Json deliveries = Json::array();
    for (const auto& d : common::pg::load_deliveries(tx, id)) {
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
    for (const auto& r : common::pg::load_envelope_recipients(tx, id)) rcpts.push_back(r);
    out["envelope_recipients"] = rcpts;
    out["deliveries"] = deliveries;
    // 8-bit headers without a charset are common: "headers" is always valid
    // JSON (bad bytes as U+FFFD); "headers_base64" then has the exact bytes.
    put_bytes(out, "headers", common::pg::load_headers(tx, id));
    print_json(out);
    return kExitOk;
  }
  print_detail(tx, messages[0]);
  return kExitOk;
}

// The selection of a bulk action, locked in tx: the ids that exist and match,
// and an outcome for each named id that does not (so it is reported, not lost).
struct Selection {
  std::vector<std::int64_t> ids;
  std::vector<MessageOutcome> missing;
};

Selection select_for_action(pqxx::transaction_base& tx, const FilterArgs& args) {
  auto filter = to_filter(args, true);
  Selection s;
  s.ids = common::pg::select_messages(tx, filter, true);
  if (args.ids.empty()) return s;
  std::vector<std::int64_t> unmatched;
  for (auto id : args.ids)
    if (std::find(s.ids.begin(), s.ids.end(), id) == s.ids.end()) unmatched.push_back(id);
  auto existing = common::pg::message_snapshots(tx, unmatched);
  for (auto id : unmatched) {
    bool exists = std::any_of(existing.begin(), existing.end(), [id](const auto& m) { return m.id == id; });
    s.missing.push_back({id, false, exists ? "does not match the filters" : "no such message"});
  }
  return s;
}

int print_report(Context& ctx, const ActionReport& report, const FilterArgs& args, const char* verb) {
  if (ctx.json) {
    print_json(report.to_json());
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
  return status;
}

// Runs a flag or due-time action on the selected messages in one transaction
// and says, per message it left alone, why.
template <class Action>
int bulk(Context& ctx, const FilterArgs& args, const char* action_name, const char* verb, Verb kind, Action action) {
  pqxx::work tx(ctx.db());
  auto selection = select_for_action(tx, args);
  ActionReport report{action_name, selection.ids.size(), selection.missing};
  auto changed = selection.ids.empty() ? std::vector<std::int64_t>{} : action(tx, selection.ids);
  std::vector<std::int64_t> unchanged;
  for (auto id : selection.ids) {
    if (std::find(changed.begin(), changed.end(), id) != changed.end())
      report.messages.push_back({id, true, verb});
    else
      unchanged.push_back(id);
  }
  for (const auto& m : common::pg::message_snapshots(tx, unchanged))
    report.messages.push_back({m.id, false, unchanged_reason(kind, m)});
  for (auto id : unchanged)  // gone meanwhile (a delete that raced another)
    if (std::none_of(report.messages.begin(), report.messages.end(), [id](const auto& m) { return m.id == id; }))
      report.messages.push_back({id, false, "no longer exists"});
  tx.commit();
  return print_report(ctx, report, args, verb);
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

struct BounceArgs {
  std::string reason = "5.0.0 delivery cancelled by the postmaster";
  bool force = false;
};

int bounce(Context& ctx, const FilterArgs& args, const BounceArgs& b) {
  common::pg::BounceOptions options;
  options.reason = b.reason;
  options.force = b.force;
  options.reporting_mta = reporting_mta(ctx);
  pqxx::work tx(ctx.db());
  auto selection = select_for_action(tx, args);
  ActionReport report{"bounce", selection.ids.size(), selection.missing};
  for (const auto& r : common::pg::bounce_messages(tx, selection.ids, options))
    report.messages.push_back(describe_bounce(r));
  tx.commit();
  return print_report(ctx, report, args, "bounced");
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
  sh->callback([&ctx, id] { ctx.action = [&ctx, id] { return show(ctx, *id); }; });

  auto reason = std::make_shared<std::string>("held by operator");
  auto* hold = app.add_subcommand("hold", "stop processing messages until released");
  add_filter_options(hold, *args, true);
  hold->add_option("--reason", *reason, "why (shown by show)");
  hold->callback([&ctx, args, reason] {
    ctx.action = [&ctx, args, reason] {
      return bulk(ctx, *args, "hold", "held", Verb::hold,
                  [&](auto& tx, const auto& ids) { return common::pg::hold_messages(tx, ids, *reason); });
    };
  });
  auto* rel = app.add_subcommand("release", "release held messages");
  add_filter_options(rel, *args, true);
  rel->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      return bulk(ctx, *args, "release", "released", Verb::release,
                  [](auto& tx, const auto& ids) { return common::pg::release_messages(tx, ids); });
    };
  });
  auto* del = app.add_subcommand("delete", "delete messages without delivering or bouncing them");
  add_filter_options(del, *args, true);
  del->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      return bulk(ctx, *args, "delete", "deleted", Verb::remove,
                  [](auto& tx, const auto& ids) { return common::pg::delete_messages(tx, ids); });
    };
  });
  auto* retry = app.add_subcommand("retry", "attempt deferred deliveries now");
  add_filter_options(retry, *args, true);
  retry->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      return bulk(ctx, *args, "retry", "retrying deliveries", Verb::retry,
                  [](auto& tx, const auto& ids) { return common::pg::retry_now(tx, ids); });
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
    ctx.action = [&ctx, args, bounce_args] { return bounce(ctx, *args, *bounce_args); };
  });
}

}  // namespace wsmtp::ctl
