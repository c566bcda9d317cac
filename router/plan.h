// One message's delivery plan: every envelope recipient expanded (expand.h)
// under one message-wide budget, final recipients reached twice planned once
// (a copy addressed to a mailbox directly wins over a list's), each list
// fanned out once, and the mailboxes that may send a vacation reply. Pure
// apart from the DirectoryLookup it asks; writing the plan is route.cpp's job.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "expand.h"
#include "pg/transitions.h"

namespace wsmtp::router {

struct Plan {
  std::vector<common::pg::PlannedDelivery> deliveries;
  std::vector<common::pg::ListFanout> fanouts;
  std::vector<std::pair<std::string, std::string>> autoreplies;  // mailbox, original recipient
  std::vector<std::string> warnings;                             // limits that refused work
  std::int64_t list_members = 0;                                 // members of the lists it fans out
  // Set: nothing is delivered; the message is held for the operator with this
  // reason (a recipient with transport "hold", see expand.h).
  std::optional<std::string> hold_reason;
};

ExpansionLimits expansion_limits(const RouterConfig& config);

// Throws what the directory throws.
Plan plan_message(common::DirectoryLookup& directory, const RouterConfig& config,
                  const std::vector<std::string>& recipients, const MessageContext& context);

// Bounces that arose inside a list's fan-out, grouped by the list's bounce
// address they are reported to.
std::vector<std::pair<std::string, std::vector<const common::pg::PlannedDelivery*>>> list_bounces(const Plan& plan);

// One info line per planned row and list fan-out, one warn line per warning.
void log_plan(std::int64_t msg_id, const Plan& plan);

}  // namespace wsmtp::router
