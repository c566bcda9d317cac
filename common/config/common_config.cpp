#include "config/common_config.h"

namespace wsmtp::common {

using namespace std::chrono_literals;

DatabaseConfig read_database_config(const ConfigFile& file) {
  SectionReader s(file, "database");
  DatabaseConfig c;
  c.conninfo = s.get_string("conninfo", "");
  if (c.conninfo.find("password=") != std::string::npos)
    s.fail("conninfo", "must not contain a password; use ~/.pgpass or a service file");
  s.finish();
  return c;
}

QueueConfig read_queue_config(const ConfigFile& file) {
  SectionReader s(file, "queue");
  QueueConfig c;
  // A lease must outlive the slowest unit of work (a large message to a slow
  // relay), but not by so much that a crashed worker's mail waits long.
  c.lease_time = s.get_duration("lease_time", c.lease_time, 2s, 24h);
  c.max_expired_claims = static_cast<int>(s.get_int("max_expired_claims", c.max_expired_claims, 1, 1000));
  // NOTIFY wakes idle workers at once; the poll is only the fallback.
  c.poll_interval = s.get_duration("poll_interval", c.poll_interval, 1s, 1h);
  // Batches over latency: a burst is claimed a few dozen messages at a time
  // instead of one by one, for up to this much delay per stage when idle.
  c.gather_time = std::chrono::milliseconds(s.get_int("gather_time_ms", c.gather_time.count(), 0, 1000));
  c.queue_lifetime = s.get_duration("queue_lifetime", c.queue_lifetime, 60s, 60 * 24h);
  s.finish();
  return c;
}

}  // namespace wsmtp::common
