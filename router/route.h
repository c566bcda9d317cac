// One routing pass: claim a batch of received messages, expand every recipient,
// and write the delivery plan (plus list fan-outs and auto-replies) with the
// 2->3 transition in one transaction per message: a router killed at any point
// leaves nothing or the whole plan. A message whose routing throws is counted
// and, after max_routing_failures, held with its error (a poison message never
// blocks the queue).
#pragma once

#include <pqxx/pqxx>

#include "config.h"
#include "config/common_config.h"

namespace wsmtp::router {

// Returns the number of messages claimed.
int route_batch(pqxx::connection& conn, const RouterConfig& config, const common::QueueConfig& queue,
                const std::string& owner);

}  // namespace wsmtp::router
