#include "action_report.h"

#include <algorithm>

#include <fmt/format.h>

#include "context.h"
#include "msg_state.h"
#include "queue_id.h"

namespace wsmtp::ctl {
namespace {

std::string state_text(int state) {
  auto s = common::state_from_int(state);
  return s ? std::string(common::state_name(*s)) : fmt::format("state {}", state);
}

}  // namespace

std::string unchanged_reason(Verb verb, const common::pg::MessageSnapshot& m) {
  const bool done = m.state == static_cast<int>(common::MsgState::done);
  switch (verb) {
    case Verb::hold:
      if (done) return "already DONE: nothing left to hold";
      if (m.held) return "already held";
      break;
    case Verb::release:
      if (!m.held) return fmt::format("not held ({})", state_text(m.state));
      break;
    case Verb::remove:
      return "could not be deleted";
    case Verb::retry:
      if (done) return "already DONE: nothing to retry";
      if (m.held) return "held: release it first ('wsmtpctl release ID'), then retry";
      if (m.state < static_cast<int>(common::MsgState::routed))
        return fmt::format("not routed yet ({}): it has no deliveries to retry", state_text(m.state));
      if (m.state == static_cast<int>(common::MsgState::delivering))
        return fmt::format("being delivered now{}", m.lease_owner.empty() ? "" : " by " + m.lease_owner);
      if (m.pending == 0) return "no pending deliveries";
      break;
  }
  return fmt::format("unchanged ({}{})", state_text(m.state), m.held ? ", held" : "");
}

MessageOutcome describe_bounce(const common::pg::BounceResult& r) {
  using common::pg::BounceVerdict;
  MessageOutcome out{r.msg_id, r.verdict == BounceVerdict::bounced, {}};
  const std::string from = r.from ? std::string(common::state_name(*r.from)) : "";
  switch (r.verdict) {
    case BounceVerdict::no_such_message:
      out.detail = "no such message";
      break;
    case BounceVerdict::receiving:
      out.detail =
          "still RECEIVING: the client was never answered 250, so there is nothing to bounce "
          "(the reaper deletes an aborted receipt)";
      break;
    case BounceVerdict::already_done:
      out.detail = "already DONE: every delivery is final and reported";
      break;
    case BounceVerdict::nothing_pending:
      out.detail = fmt::format("{}: no pending deliveries and no unreported failure; nothing to bounce", from);
      break;
    case BounceVerdict::live_lease:
      out.detail = fmt::format(
          "DELIVERING: {} holds a live lease until {} and may be handing it to a mailbox or relay now; "
          "try again after that attempt, or use --force (the recipient may then get it and the sender a DSN)",
          r.lease_owner, r.lease_expires);
      break;
    case BounceVerdict::bounced: {
      const bool unrouted = r.from == common::MsgState::received || r.from == common::MsgState::routing;
      const char* what = unrouted ? (r.bounced == 1 ? "envelope recipient" : "envelope recipients")
                                  : (r.bounced == 1 ? "pending delivery" : "pending deliveries");
      out.detail = fmt::format("{}{}: bounced {} {}", from, r.held ? " (held)" : "", r.bounced, what);
      if (r.reported > r.bounced) out.detail += fmt::format(" ({} failures reported in all)", r.reported);
      if (!r.lease_owner.empty()) out.detail += fmt::format("; took over the lease of {}", r.lease_owner);
      if (r.null_sender)
        out.detail += "; no DSN: the sender is <> (a report to the null sender could never be delivered)";
      else if (r.dsn_id)
        out.detail += fmt::format("; DSN msg={} queued to the sender", common::qid(*r.dsn_id));
      else
        out.detail += "; no DSN to the sender (the failures go to a list's bounce address)";
      out.detail += "; now DONE";
      break;
    }
  }
  return out;
}

std::size_t ActionReport::changed() const {
  return static_cast<std::size_t>(
      std::count_if(messages.begin(), messages.end(), [](const MessageOutcome& m) { return m.changed; }));
}

int ActionReport::exit_status(const std::vector<std::int64_t>& named_ids) const {
  if (changed() == 0) return kExitFailed;
  for (auto id : named_ids) {
    auto it = std::find_if(messages.begin(), messages.end(), [id](const MessageOutcome& m) { return m.id == id; });
    if (it == messages.end() || !it->changed) return kExitFailed;
  }
  return kExitOk;
}

Json ActionReport::to_json() const {
  Json list = Json::array();
  for (const auto& m : messages) list.push_back({{"id", m.id}, {"changed", m.changed}, {"detail", m.detail}});
  return {{"action", action}, {"selected", selected}, {"changed", changed()}, {"messages", list}};
}

}  // namespace wsmtp::ctl
