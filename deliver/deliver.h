// One delivery pass: claim messages with due deliveries on our transports, run
// each delivery, and record the results with the 4->5 (all final) or 4->3 (some
// deferred) transition in one transaction per message.
#pragma once

#include <string>

#include <pqxx/pqxx>

#include "config.h"
#include "config/common_config.h"

namespace wsmtp::deliver {

// Returns the number of messages claimed.
int deliver_batch(pqxx::connection& conn, const DeliverConfig& config, const common::QueueConfig& queue,
                  const std::string& owner, const std::string& host);

}  // namespace wsmtp::deliver
