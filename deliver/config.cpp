#include "config.h"

#include <pwd.h>

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "address.h"
#include "identity.h"

namespace wsmtp::deliver {

using namespace std::chrono_literals;

namespace {
// An octal permission such as "0700"; only permission bits.
unsigned read_mode(common::SectionReader& s, const std::string& key, unsigned fallback) {
  auto text = s.get_string(key, fmt::format("{:04o}", fallback));
  char* end = nullptr;
  unsigned long mode = std::strtoul(text.c_str(), &end, 8);
  if (text.empty() || *end != '\0' || mode > 0777) s.fail(key, "must be an octal mode such as 0700");
  return static_cast<unsigned>(mode);
}

const std::vector<std::string> kKnownTransports = {"maildir", "mbox", "relay", "lmtp"};

constexpr std::pair<std::string_view, DeliverConfig::OverQuota> kOverQuotaNames[] = {
    {"defer", DeliverConfig::OverQuota::defer}, {"bounce", DeliverConfig::OverQuota::bounce}};
}  // namespace

std::optional<EightBitPolicy> eightbit_policy_named(std::string_view name) {
  for (const auto& [word, policy] : kEightBitPolicyNames)
    if (word == name) return policy;
  return std::nullopt;
}

DeliverConfig read_deliver_config(const common::ConfigFile& file) {
  common::SectionReader s(file, "deliver");
  DeliverConfig c;
  c.transports = s.get_list("transports", c.transports);
  if (c.transports.empty()) s.fail("transports", "must name at least one transport");
  for (const auto& t : c.transports)
    if (std::find(kKnownTransports.begin(), kKnownTransports.end(), t) == kKnownTransports.end())
      s.fail("transports", fmt::format("unknown transport '{}' (known: {})", t, fmt::join(kKnownTransports, ", ")));
  c.batch_size = static_cast<int>(s.get_int("batch_size", c.batch_size, 1, 1000));
  c.retry_share_percent = static_cast<int>(s.get_int("retry_share_percent", c.retry_share_percent, 1, 100));
  c.retry_base = s.get_duration("retry_base", c.retry_base, 1s, 24h);
  c.retry_factor = static_cast<int>(s.get_int("retry_factor", c.retry_factor, 1, 10));
  c.retry_max = s.get_duration("retry_max", c.retry_max, 1s, 7 * 24h);
  if (c.retry_max < c.retry_base) s.fail("retry_max", "must not be shorter than retry_base");
  c.delay_warning_after = s.get_duration("delay_warning_after", c.delay_warning_after, 0s, 60 * 24h);
  c.maildir_owner = s.get_string("maildir_owner", c.maildir_owner);
  if (!c.maildir_owner.empty() && !::getpwnam(c.maildir_owner.c_str()))
    s.fail("maildir_owner", "no such user '" + c.maildir_owner + "'");
  c.maildir_dir_mode = read_mode(s, "maildir_dir_mode", c.maildir_dir_mode);
  c.maildir_file_mode = read_mode(s, "maildir_file_mode", c.maildir_file_mode);
  if ((c.maildir_dir_mode & 0700) != 0700) s.fail("maildir_dir_mode", "the owner needs rwx (0700 at least)");
  if ((c.maildir_file_mode & 0600) != 0600) s.fail("maildir_file_mode", "the owner needs rw (0600 at least)");
  c.over_quota = s.get_choice("over_quota", c.over_quota, kOverQuotaNames);
  c.mbox_lock_timeout = s.get_duration("mbox_lock_timeout", c.mbox_lock_timeout, 1s, 1h);
  c.mbox_stale_lock_age = s.get_duration("mbox_stale_lock_age", c.mbox_stale_lock_age, 10s, 24h);
  c.relay_connect_timeout = s.get_duration("relay_connect_timeout", c.relay_connect_timeout, 1s, 10min);
  c.relay_command_timeout = s.get_duration("relay_command_timeout", c.relay_command_timeout, 1s, 1h);
  c.relay_ca_file = s.get_string("relay_ca_file", c.relay_ca_file);
  c.lmtp_server = s.get_string("lmtp_server", c.lmtp_server);
  if (!c.lmtp_server.empty() && c.lmtp_server[0] != '/') {
    auto colon = c.lmtp_server.rfind(':');
    bool ok = colon != std::string::npos && colon > 0 && colon + 1 < c.lmtp_server.size() &&
              c.lmtp_server.find_first_not_of("0123456789", colon + 1) == std::string::npos &&
              c.lmtp_server.size() - colon - 1 <= 5;
    if (!ok) s.fail("lmtp_server", "must be host:port or an absolute Unix socket path");
  }
  c.lmtp_eightbit = s.get_choice("lmtp_eightbit", c.lmtp_eightbit, kEightBitPolicyNames);
  // No check against max_workers: a limit counts the workers of every host,
  // so a limit at or above one host's max_workers is right with several.
  c.relay_concurrency = static_cast<int>(s.get_int("relay_concurrency", c.relay_concurrency, 1, 1000));
  c.lmtp_concurrency = static_cast<int>(s.get_int("lmtp_concurrency", c.lmtp_concurrency, 1, 1000));
  c.maildir_concurrency = static_cast<int>(s.get_int("maildir_concurrency", c.maildir_concurrency, 1, 1000));
  c.mbox_concurrency = static_cast<int>(s.get_int("mbox_concurrency", c.mbox_concurrency, 1, 1000));
  c.destination_backoff_after =
      static_cast<int>(s.get_int("destination_backoff_after", c.destination_backoff_after, 0, 100));
  c.destination_backoff_base = s.get_duration("destination_backoff_base", c.destination_backoff_base, 1s, 1h);
  c.destination_backoff_max = s.get_duration("destination_backoff_max", c.destination_backoff_max, 1s, 24h);
  if (c.destination_backoff_max < c.destination_backoff_base)
    s.fail("destination_backoff_max", "must not be shorter than destination_backoff_base");
  c.hostname = s.get_string("hostname", common::host_name());
  if (!common::is_valid_domain(c.hostname)) s.fail("hostname", "'" + c.hostname + "' is not a valid domain name");
  c.scaling = common::read_worker_scaling(s);
  s.finish();
  return c;
}

int retry_lane_size(const DeliverConfig& config) { return (config.batch_size * config.retry_share_percent + 99) / 100; }

int concurrency_limit(const DeliverConfig& config, std::string_view transport) {
  if (transport == "relay") return config.relay_concurrency;
  if (transport == "lmtp") return config.lmtp_concurrency;
  if (transport == "maildir") return config.maildir_concurrency;
  if (transport == "mbox") return config.mbox_concurrency;
  return 1;
}

std::chrono::seconds retry_delay(const DeliverConfig& config, int attempt) {
  auto delay = config.retry_base;
  for (int i = 1; i < attempt && delay < config.retry_max; ++i) delay *= config.retry_factor;
  return std::min(delay, config.retry_max);
}

}  // namespace wsmtp::deliver
