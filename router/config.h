// [router] settings.
#pragma once

#include <string>

#include "config/config_file.h"

namespace wsmtp::router {

struct RouterConfig {
  int batch_size = 20;        // messages claimed per transaction
  int max_alias_depth = 10;   // nesting beyond this bounces (a loop guard)
  int max_expansion = 20000;  // final recipients per envelope recipient
  std::string relay_pool = "default";  // where mail for remote domains goes
};

RouterConfig read_router_config(const common::ConfigFile& file);

}  // namespace wsmtp::router
