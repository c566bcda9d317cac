// The sections every daemon shares: [database] (how to reach PostgreSQL) and
// [queue] (lease length and the poison-message limit that router, deliverer and
// reaper must agree on).
#pragma once

#include <chrono>
#include <string>

#include "config/config_file.h"

namespace wsmtp::common {

struct DatabaseConfig {
  // A libpq connection string; empty means "use the PG* environment variables".
  // Passwords belong in ~/.pgpass or a service file, never here.
  std::string conninfo;
};

struct QueueConfig {
  std::chrono::seconds lease_time{300};
  int max_expired_claims = 5;
  std::chrono::seconds poll_interval{5};
  // A worker woken by NOTIFY waits this long for more work before it claims.
  std::chrono::milliseconds gather_time{20};
  // A delivery still failing temporarily this long after receipt is bounced
  // (RFC 5321 §4.5.4.1 suggests at least 4-5 days).
  std::chrono::seconds queue_lifetime{5 * 86400};
};

DatabaseConfig read_database_config(const ConfigFile& file);
QueueConfig read_queue_config(const ConfigFile& file);

}  // namespace wsmtp::common
