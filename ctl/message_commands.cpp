// wsmtpctl list | show | hold | release | delete | retry | bounce
#include <iostream>

#include <fmt/format.h>

#include "context.h"
#include "filter_options.h"
#include "json.h"
#include "queue_id.h"
#include "pg/message_view.h"
#include "pg/operator_actions.h"

namespace wsmtp::ctl {
namespace {

using common::pg::MessageDetail;

std::string message_json(const MessageDetail& m) {
  return fmt::format(
      R"({{"id":{},"state":{},"state_name":"{}","sender":{},"client":{},"helo":{},"size":{},"created_at":{},)"
      R"("received_at":{},"routing_at":{},"routed_at":{},"delivering_at":{},"done_at":{},"state_changed_at":{},)"
      R"("next_attempt_at":{},"lease_owner":{},"lease_expires":{},"expired_claims":{},"held":{},"held_reason":{},)"
      R"("last_error":{},"recipients":{},"pending":{},"delivered":{},"bounced":{}}})",
      m.id, static_cast<int>(m.state), common::state_name(m.state), json_str(m.envelope_from), json_str(m.client_addr),
      json_str(m.client_helo), m.size, json_str(m.created_at), json_str(m.received_at), json_str(m.routing_at),
      json_str(m.routed_at), json_str(m.delivering_at), json_str(m.done_at), json_str(m.state_changed_at),
      json_str(m.next_attempt_at), json_str(m.lease_owner), json_str(m.lease_expires), m.expired_claims,
      m.held ? "true" : "false", json_str(m.held_reason), json_str(m.last_error), m.recipients, m.pending, m.delivered,
      m.bounced);
}

int list(Context& ctx, const FilterArgs& args) {
  auto filter = to_filter(args, false);
  pqxx::read_transaction tx(ctx.db());
  auto messages = common::pg::load_messages(tx, common::pg::select_messages(tx, filter));
  if (ctx.json) {
    std::cout << "[";
    for (std::size_t i = 0; i < messages.size(); ++i) std::cout << (i ? "," : "") << message_json(messages[i]);
    std::cout << "]\n";
    return kExitOk;
  }
  std::cout << fmt::format("{:>10} {:<11} {:<20} {:>9} {:>5} {:>4} {}\n", "ID", "STATE", "CREATED", "SIZE", "RCPTS",
                           "HELD", "SENDER");
  for (const auto& m : messages)
    std::cout << fmt::format("{:>10} {:<11} {:<20} {:>9} {:>5} {:>4} {}\n", common::qid(m.id),
                             common::state_name(m.state), m.created_at, m.size, m.recipients, m.held ? "yes" : "",
                             m.envelope_from.empty() ? "<>" : m.envelope_from);
  return kExitOk;
}

void print_detail(pqxx::transaction_base& tx, const MessageDetail& m) {
  auto line = [](const char* label, const std::string& value) {
    if (!value.empty()) std::cout << fmt::format("{:<16} {}\n", label, value);
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
    std::cout << fmt::format("delivery {:<7} {} -> {} via {} {} [{}] attempts={}{}{}\n", d.id, d.original_rcpt,
                             d.recipient, d.transport, d.destination, d.status, d.attempts,
                             d.status == "pending" ? " next=" + d.next_attempt_at : " at " + d.final_at,
                             d.last_error.empty() ? "" : " error: " + d.last_error);
  }
  auto headers = common::pg::load_headers(tx, m.id);
  if (!headers.empty()) std::cout << "headers:\n" << headers;
}

int show(Context& ctx, std::int64_t id) {
  pqxx::read_transaction tx(ctx.db());
  auto messages = common::pg::load_messages(tx, {id});
  if (messages.empty()) throw CommandError(fmt::format("no message {}", common::qid(id)));
  if (ctx.json) {
    std::string deliveries;
    for (const auto& d : common::pg::load_deliveries(tx, id))
      deliveries +=
          fmt::format(R"({}{{"id":{},"recipient":{},"original_rcpt":{},"transport":{},"destination":{},"status":{},)"
                      R"("attempts":{},"next_attempt_at":{},"last_error":{},"final_at":{}}})",
                      deliveries.empty() ? "" : ",", d.id, json_str(d.recipient), json_str(d.original_rcpt),
                      json_str(d.transport), json_str(d.destination), json_str(d.status), d.attempts,
                      json_str(d.next_attempt_at), json_str(d.last_error), json_str(d.final_at));
    std::string rcpts;
    for (const auto& r : common::pg::load_envelope_recipients(tx, id))
      rcpts += (rcpts.empty() ? "" : ",") + json_str(r);
    auto m = message_json(messages[0]);
    m.pop_back();
    std::cout << m
              << fmt::format(R"(,"envelope_recipients":[{}],"deliveries":[{}],"headers":{}}})", rcpts, deliveries,
                             json_str(common::pg::load_headers(tx, id)))
              << "\n";
    return kExitOk;
  }
  print_detail(tx, messages[0]);
  return kExitOk;
}

// Runs a bulk action on the selected messages in one transaction.
template <class Action>
int bulk(Context& ctx, const FilterArgs& args, const char* verb, Action action) {
  auto filter = to_filter(args, true);
  pqxx::work tx(ctx.db());
  auto ids = common::pg::select_messages(tx, filter, true);
  if (ids.empty()) {
    std::cout << "no matching messages\n";
    return args.ids.empty() ? kExitOk : kExitFailed;
  }
  int n = action(tx, ids);
  tx.commit();
  std::cout << fmt::format("{} {} of {} selected message(s)\n", verb, n, ids.size());
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
  sh->callback([&ctx, id] { ctx.action = [&ctx, id] { return show(ctx, *id); }; });

  auto reason = std::make_shared<std::string>("held by operator");
  auto* hold = app.add_subcommand("hold", "stop processing messages until released");
  add_filter_options(hold, *args, true);
  hold->add_option("--reason", *reason, "why (shown by show)");
  hold->callback([&ctx, args, reason] {
    ctx.action = [&ctx, args, reason] {
      return bulk(ctx, *args, "held",
                  [&](auto& tx, const auto& ids) { return common::pg::hold_messages(tx, ids, *reason); });
    };
  });
  auto* rel = app.add_subcommand("release", "release held messages");
  add_filter_options(rel, *args, true);
  rel->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      return bulk(ctx, *args, "released",
                  [](auto& tx, const auto& ids) { return common::pg::release_messages(tx, ids); });
    };
  });
  auto* del = app.add_subcommand("delete", "delete messages without delivering or bouncing them");
  add_filter_options(del, *args, true);
  del->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      return bulk(ctx, *args, "deleted",
                  [](auto& tx, const auto& ids) { return common::pg::delete_messages(tx, ids); });
    };
  });
  auto* retry = app.add_subcommand("retry", "attempt deferred deliveries now");
  add_filter_options(retry, *args, true);
  retry->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      return bulk(ctx, *args, "retrying deliveries",
                  [](auto& tx, const auto& ids) { return common::pg::retry_now(tx, ids); });
    };
  });
  auto bounce_reason = std::make_shared<std::string>("5.0.0 delivery cancelled by the postmaster");
  auto* bounce = app.add_subcommand("bounce", "give up pending deliveries of routed messages; the sender gets a DSN");
  add_filter_options(bounce, *args, true);
  bounce->add_option("--reason", *bounce_reason, "status and text put in the DSN");
  bounce->callback([&ctx, args, bounce_reason] {
    ctx.action = [&ctx, args, bounce_reason] {
      return bulk(ctx, *args, "bounced deliveries",
                  [&](auto& tx, const auto& ids) { return common::pg::bounce_pending(tx, ids, *bounce_reason); });
    };
  });
}

}  // namespace wsmtp::ctl
