// [router] settings.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "config/config_file.h"
#include "config/worker_scaling.h"

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
  // Where mail to postmaster goes when the domain has no postmaster mailbox,
  // alias or list (RFC 5321 §4.5.1), and mail to the bare <Postmaster>. A
  // lookup key; "": not set, such mail is held for the operator.
  std::string postmaster;
  common::WorkerScaling scaling;  // min_workers, max_workers, backlog_per_worker, idle_time
};

RouterConfig read_router_config(const common::ConfigFile& file);

}  // namespace wsmtp::router
