// One routing pass: claim a batch of received messages, expand every recipient,
// and write the delivery plan with the 2->3 transition in one transaction per
// message (a router killed at any point leaves nothing or the whole plan).
#pragma once

#include <pqxx/pqxx>

#include "config.h"
#include "config/common_config.h"

namespace wsmtp::router {

// Returns the number of messages claimed. A message whose routing throws is
// logged and left to its lease: it is retried, and held after repeated failures.
int route_batch(pqxx::connection& conn, const RouterConfig& config, const common::QueueConfig& queue,
                const std::string& owner);

}  // namespace wsmtp::router
