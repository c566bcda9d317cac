#include "plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "log.h"
#include "queue_id.h"

namespace wsmtp::router {

ExpansionLimits expansion_limits(const RouterConfig& config) {
  ExpansionLimits limits;
  limits.max_depth = config.max_alias_depth;
  limits.max_expansion = config.max_expansion;
  limits.max_list_members = config.max_list_members;
  limits.relay_pool = config.relay_pool;
  limits.postmaster = config.postmaster;
  return limits;
}

Plan plan_message(common::DirectoryLookup& directory, const RouterConfig& config,
                  const std::vector<std::string>& recipients, const MessageContext& context) {
  const ExpansionLimits limits = expansion_limits(config);
  ExpansionBudget budget;
  Plan plan;
  std::vector<common::pg::PlannedDelivery> candidates;
  // A list reached twice fans out once, and a mailbox answers a sender once.
  std::set<std::string> lists, answered;
  for (const auto& rcpt : recipients) {
    auto expansion = expand_recipient(directory, rcpt, context, limits, budget);
    for (auto& r : expansion.recipients) {
      if (r.transport == kHoldTransport) {
        if (!plan.hold_reason) plan.hold_reason = r.bounce_reason;
        continue;
      }
      common::pg::PlannedDelivery p{r.address,         rcpt,           r.transport, r.destination, std::nullopt,
                                    r.prepend_headers, r.envelope_from};
      if (r.transport == kBounceTransport) p.bounce_reason = r.bounce_reason;
      candidates.push_back(std::move(p));
    }
    for (auto& l : expansion.lists)
      if (lists.insert(l.list_address).second)
        plan.fanouts.push_back({l.list_address, rcpt, l.prepend_headers, l.envelope_from, config.relay_pool});
    for (auto& m : expansion.autoreply_mailboxes)
      if (answered.insert(m).second) plan.autoreplies.emplace_back(m, rcpt);
    for (auto& w : expansion.warnings) plan.warnings.push_back(std::move(w));
  }
  // The same final mailbox reached twice gets one copy; a copy addressed to it
  // directly wins over a list's (the list fan-outs, inserted after the plan,
  // skip members already planned).
  std::stable_partition(candidates.begin(), candidates.end(),
                        [](const auto& p) { return !p.envelope_from_override.has_value(); });
  plan.list_members = budget.list_members;
  std::set<std::string> planned;
  for (auto& p : candidates)
    if (planned.insert(p.recipient + '\0' + p.transport + '\0' + p.destination).second)
      plan.deliveries.push_back(std::move(p));
  return plan;
}

std::vector<std::pair<std::string, std::vector<const common::pg::PlannedDelivery*>>> list_bounces(const Plan& plan) {
  std::map<std::string, std::vector<const common::pg::PlannedDelivery*>> by_address;
  for (const auto& p : plan.deliveries)
    if (p.bounce_reason && p.envelope_from_override) by_address[*p.envelope_from_override].push_back(&p);
  return {by_address.begin(), by_address.end()};
}

void log_plan(std::int64_t msg_id, const Plan& plan) {
  for (const auto& w : plan.warnings) log::warn("msg={} {}", common::qid(msg_id), w);
  for (const auto& p : plan.deliveries)
    log::info("msg={} route rcpt={} orig={} transport={} dest={}{}", common::qid(msg_id), p.recipient, p.original_rcpt,
              p.transport, p.destination,
              !p.bounce_reason           ? std::string()
              : p.envelope_from_override ? " bounce=" + *p.bounce_reason + " report_to=" + *p.envelope_from_override
                                         : " bounce=" + *p.bounce_reason);
  for (const auto& f : plan.fanouts)
    log::info("msg={} route list={} orig={} envelope_from={}", common::qid(msg_id), f.list_address, f.original_rcpt,
              f.envelope_from);
}

}  // namespace wsmtp::router
