#include "filter_options.h"

#include <fmt/format.h>

#include "address.h"
#include "config/config_file.h"
#include "context.h"
#include "queue_id.h"

namespace wsmtp::ctl {

std::optional<common::MsgState> parse_state(const std::string& text) {
  for (auto s : common::kAllStates) {
    if (text == std::to_string(static_cast<int>(s)) || text == common::state_name(s) ||
        common::to_lower_ascii(text) == common::to_lower_ascii(common::state_name(s)))
      return s;
  }
  return std::nullopt;
}

CLI::Validator queue_id_arg() {
  return CLI::Validator(
      [](std::string& text) {
        auto id = common::parse_queue_id(text);
        if (!id) return fmt::format("'{}' is not a queue id", text);
        text = std::to_string(*id);
        return std::string();
      },
      "QUEUE_ID", "queue id");
}

void add_filter_options(CLI::App* cmd, FilterArgs& a, bool bulk) {
  cmd->add_option("ids", a.ids, "queue ids (as in the logs and the 250 reply)")->transform(queue_id_arg());
  cmd->add_option("--state", a.state, "state name or number (e.g. ROUTED or 3)");
  cmd->add_option("--older-than", a.older_than, "created longer ago than this (e.g. 30m, 2h, 5d)");
  cmd->add_option("--sender", a.sender, "envelope sender (use '<>' for the null sender)");
  cmd->add_option("--recipient", a.recipient, "envelope or final recipient");
  cmd->add_option("--client", a.client, "client IP address or CIDR");
  cmd->add_flag("--held", a.held, "only held messages");
  cmd->add_flag("--not-held", a.not_held, "only messages that are not held");
  cmd->add_flag("--deferred", a.deferred, "only messages with a delivery that failed temporarily");
  cmd->add_option("--limit", a.limit, "at most this many messages")->check(CLI::Range(1, 1000000));
  if (bulk) cmd->add_flag("--all", a.all, "act on every message (required when no other selection is given)");
}

common::pg::MessageFilter to_filter(const FilterArgs& a, bool bulk) {
  common::pg::MessageFilter f;
  f.ids = a.ids;
  if (!a.state.empty()) {
    f.state = parse_state(a.state);
    if (!f.state) throw UsageError(fmt::format("--state {}: expected a state name or 0-5", a.state));
  }
  if (!a.older_than.empty()) {
    f.older_than = common::parse_duration(a.older_than);
    if (!f.older_than)
      throw UsageError(fmt::format("--older-than {}: expected a duration like 30m, 2h, 5d", a.older_than));
  }
  if (!a.sender.empty()) f.sender = a.sender == "<>" ? std::string() : a.sender;
  if (!a.recipient.empty()) f.recipient = a.recipient;
  if (!a.client.empty()) f.client = a.client;
  if (a.held && a.not_held) throw UsageError("--held and --not-held exclude each other");
  if (a.held) f.held = true;
  if (a.not_held) f.held = false;
  f.deferred = a.deferred;
  f.limit = a.limit;
  if (bulk && f.empty() && !a.all)
    throw UsageError("no messages selected: give ids or filters (--state, --sender, ...), or --all");
  return f;
}

}  // namespace wsmtp::ctl
