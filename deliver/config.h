// [deliver] settings.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "config/config_file.h"

namespace wsmtp::deliver {

struct DeliverConfig {
  // Transports this deliverer serves; a mailbox host serves "maildir", a
  // relay-facing host its relay pools.
  std::vector<std::string> transports{"maildir"};
  int batch_size = 20;
  std::chrono::seconds retry_base{60};      // first retry delay; doubles per attempt
  std::chrono::seconds retry_max{4 * 3600};  // cap of the backoff
};

DeliverConfig read_deliver_config(const common::ConfigFile& file);

// Backoff for the attempt-th failure (1-based): base * 2^(attempt-1), capped.
std::chrono::seconds retry_delay(const DeliverConfig& config, int attempt);

}  // namespace wsmtp::deliver
