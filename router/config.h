// [router] settings.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "config/config_file.h"

namespace wsmtp::router {

struct RouterConfig {
  int batch_size = 50;                     // messages claimed (and routed) per transaction
  int max_alias_depth = 10;                // nesting beyond this bounces (a loop guard)
  int max_expansion = 20000;               // addresses one envelope recipient's expansion may visit
                                           // (past it: one bounce); list bulk fan-out not counted
  std::int64_t max_list_members = 100000;  // members of all lists one message fans out; a list
                                           // that would pass it bounces (5.2.4)
  std::string relay_pool = "default";      // where mail for remote domains goes
  int max_routing_failures = 3;            // a message whose routing throws this often is held
  std::string hostname;                    // for auto-reply Message-IDs; default: the host name
  // The supervisor: worker processes between min and max, one more per
  // backlog_per_worker waiting messages; a surplus worker idle for idle_time
  // retires.
  int min_workers = 1;
  int max_workers = 4;
  int backlog_per_worker = 200;
  std::chrono::seconds idle_time{30};
};

RouterConfig read_router_config(const common::ConfigFile& file);

}  // namespace wsmtp::router
