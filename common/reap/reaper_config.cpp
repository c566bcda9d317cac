#include "reap/reaper_config.h"

namespace wsmtp::common::reap {

using namespace std::chrono_literals;

ReaperConfig read_reaper_config(const ConfigFile& file) {
  SectionReader s(file, "reaper");
  ReaperConfig c;
  c.interval = s.get_duration("interval", c.interval, 1s, 24h);
  // Must exceed the listener's data_timeout, or a slow but live upload is deleted under it.
  c.receive_timeout = s.get_duration("receive_timeout", c.receive_timeout, 60s, 7 * 24h);
  c.retention = s.get_duration("retention", c.retention, 0s, 365 * 24h);
  c.batch_size = static_cast<int>(s.get_int("batch_size", c.batch_size, 1, 100000));
  s.finish();
  return c;
}

}  // namespace wsmtp::common::reap
