// [reaper] settings.
#pragma once

#include <chrono>

#include "config/config_file.h"

namespace wsmtp::common::reap {

struct ReaperConfig {
  std::chrono::seconds interval{60};           // between passes
  std::chrono::seconds receive_timeout{3600};  // state 0 older than this was aborted
  std::chrono::seconds retention{7 * 86400};   // state 5 kept this long for operators
  int batch_size = 1000;                       // rows per statement
};

ReaperConfig read_reaper_config(const ConfigFile& file);

}  // namespace wsmtp::common::reap
