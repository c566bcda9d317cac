#include "config.h"

#include <algorithm>

namespace wsmtp::deliver {

using namespace std::chrono_literals;

namespace {
const std::vector<std::string> kKnownTransports = {"maildir"};
}

DeliverConfig read_deliver_config(const common::ConfigFile& file) {
  common::SectionReader s(file, "deliver");
  DeliverConfig c;
  c.transports = s.get_list("transports", c.transports);
  if (c.transports.empty()) s.fail("transports", "must name at least one transport");
  for (const auto& t : c.transports)
    if (std::find(kKnownTransports.begin(), kKnownTransports.end(), t) == kKnownTransports.end())
      s.fail("transports", "unknown transport '" + t + "' (known: maildir)");
  c.batch_size = static_cast<int>(s.get_int("batch_size", c.batch_size, 1, 1000));
  c.retry_base = s.get_duration("retry_base", c.retry_base, 1s, 24h);
  c.retry_max = s.get_duration("retry_max", c.retry_max, 1s, 7 * 24h);
  if (c.retry_max < c.retry_base) s.fail("retry_max", "must not be shorter than retry_base");
  s.finish();
  return c;
}

std::chrono::seconds retry_delay(const DeliverConfig& config, int attempt) {
  auto delay = config.retry_base;
  for (int i = 1; i < attempt && delay < config.retry_max; ++i) delay *= 2;
  return std::min(delay, config.retry_max);
}

}  // namespace wsmtp::deliver
