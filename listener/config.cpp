// Each key's name, default, bounds and check sit together (STYLE §7). Bounds are
// generous but catch unit mistakes (a timeout of "5" meant as minutes is 5s and
// is refused because no client can work with it).
#include "config.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <thread>

#include <fmt/format.h>

#include "address.h"
#include "milter/milter_config.h"
#include "tls.h"
#include "identity.h"

namespace wsmtp::listener {

std::string ListenAddress::str() const {
  return address.family == IpAddress::Family::v6 ? fmt::format("[{}]:{}", address.str(), port)
                                                 : fmt::format("{}:{}", address.str(), port);
}

bool ListenerConfig::is_trusted(const IpAddress& address) const {
  for (const auto& network : trusted_networks)
    if (network.contains(address)) return true;
  return false;
}

bool ListenerConfig::is_limit_exempt(const IpAddress& address) const {
  for (const auto& network : limit_exceptions)
    if (network.contains(address)) return true;
  return false;
}

bool parse_listen_address(const std::string& text, ListenAddress& out) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string_view host(text.data(), colon);
  std::string_view port(text.data() + colon + 1, text.size() - colon - 1);
  bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  auto address = IpAddress::parse(host);
  // An IPv6 host needs brackets, otherwise "::1:25" is ambiguous.
  if (!address || (address->family == IpAddress::Family::v6) != bracketed) return false;
  unsigned value = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || value == 0 || value > 65535)
    return false;
  out.address = *address;
  out.port = static_cast<std::uint16_t>(value);
  return true;
}

namespace {

void read_protection_keys(common::SectionReader& s, ListenerConfig& c) {
  using std::chrono::seconds;
  // Below 1000 even RFC-conforming mail would be refused.
  c.max_line_length = static_cast<std::size_t>(s.get_int("max_line_length", c.max_line_length, 1000, 1 << 20));
  c.max_received_headers = static_cast<int>(s.get_int("max_received_headers", c.max_received_headers, 10, 1000));
  c.max_auth_failures = static_cast<int>(s.get_int("max_auth_failures", c.max_auth_failures, 1, 100));
  c.max_auth_failures_per_client =
      static_cast<int>(s.get_int("max_auth_failures_per_client", c.max_auth_failures_per_client, 0, 100000));
  c.auth_failure_window = s.get_duration("auth_failure_window", c.auth_failure_window, seconds(1), seconds(86400));
  c.tarpit_after_errors = static_cast<int>(s.get_int("tarpit_after_errors", c.tarpit_after_errors, 1, 1000));
  c.tarpit_delay = s.get_duration("tarpit_delay", c.tarpit_delay, seconds(0), seconds(60));
  c.max_connection_rate = static_cast<int>(s.get_int("max_connection_rate", c.max_connection_rate, 0, 1000000));
  // Shorter than a /32 (a whole provider's allocation) would let one network
  // lock out a large share of the Internet; 128 keys by the full address again.
  c.ipv6_limit_prefix = static_cast<int>(s.get_int("ipv6_limit_prefix", c.ipv6_limit_prefix, 32, 128));
  // A trickling client must not hold a connection slot for ever (Postfix's
  // smtpd_per_record_deadline and smtpd_min_data_rate). Seconds are allowed so
  // tests can use them; real deployments keep minutes.
  c.command_deadline = s.get_duration("command_deadline", c.command_deadline, seconds(1), seconds(3600));
  c.min_data_rate = static_cast<std::uint64_t>(s.get_int("min_data_rate", c.min_data_rate, 0, 1000000000));
  c.max_session_time = s.get_duration("max_session_time", c.max_session_time, seconds(0), seconds(7 * 86400));
  c.shutdown_grace = s.get_duration("shutdown_grace", c.shutdown_grace, seconds(0), seconds(600));
  auto cores = static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  c.loops = static_cast<int>(s.get_int("loops", cores, 1, 256));
}

// 0 turns a quota off. The trusted quota is off by default: a local
// application may queue thousands of messages at once (the README's demo does).
void read_backlog_keys(common::SectionReader& s, ListenerConfig& c) {
  using std::chrono::seconds;
  auto& q = c.backlog_quotas;
  constexpr std::int64_t kMax = std::int64_t(1) << 40;
  q.sender_domain = static_cast<std::uint64_t>(
      s.get_int("backlog_quota_sender_domain", static_cast<std::int64_t>(q.sender_domain), 0, kMax));
  q.client =
      static_cast<std::uint64_t>(s.get_int("backlog_quota_client", static_cast<std::int64_t>(q.client), 0, kMax));
  q.user = static_cast<std::uint64_t>(s.get_int("backlog_quota_user", static_cast<std::int64_t>(q.user), 0, kMax));
  q.trusted =
      static_cast<std::uint64_t>(s.get_int("backlog_quota_trusted", static_cast<std::int64_t>(q.trusted), 0, kMax));
  c.backlog_check_interval =
      s.get_duration("backlog_check_interval", c.backlog_check_interval, seconds(1), seconds(300));
}

// The files are read here too, so a typo or a key that does not match its
// certificate is a configuration error at start (and a refused reload), not a
// failed handshake later.
void read_tls_keys(common::SectionReader& s, ListenerConfig& c) {
  c.tls_cert_file = s.get_string("tls_cert_file", "");
  c.tls_key_file = s.get_string("tls_key_file", "");
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    s.fail(c.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file",
           "tls_cert_file and tls_key_file must be set together");
  if (!c.tls_enabled()) return;
  try {
    make_tls_context(c);
  } catch (const std::exception& e) {
    s.fail("tls_cert_file", e.what());
  }
}

// The milter_* keys are every milter's defaults; a milter's own settings in
// braces override them (Postfix 3's syntax).
void read_milter_keys(common::SectionReader& s, ListenerConfig& c) {
  milter::MilterSpec defaults;
  auto action = s.get_word("milter_default_action", 0, {"tempfail", "accept", "reject", "quarantine"});
  defaults.default_action = milter::parse_default_action(
      std::array<std::string_view, 4>{"tempfail", "accept", "reject", "quarantine"}[action]);
  using std::chrono::seconds;
  auto timeout = [&](const char* key, std::chrono::milliseconds fallback) {
    return std::chrono::milliseconds(
        s.get_duration(key, std::chrono::duration_cast<seconds>(fallback), seconds(1), seconds(3600)));
  };
  defaults.connect_timeout = timeout("milter_connect_timeout", defaults.connect_timeout);
  defaults.command_timeout = timeout("milter_command_timeout", defaults.command_timeout);
  defaults.content_timeout = timeout("milter_content_timeout", defaults.content_timeout);
  try {
    c.milters =
        std::make_shared<const milter::MilterSpecs>(milter::parse_milters(s.get_string("milters", ""), defaults));
  } catch (const milter::MilterConfigError& e) {
    s.fail("milters", e.what());
  }
}

}  // namespace

ListenerConfig read_listener_config(const common::ConfigFile& file) {
  using std::chrono::seconds;
  common::SectionReader s(file, "listener");
  ListenerConfig c;

  for (const auto& text : s.get_list("listen", {"127.0.0.1:2525"})) {
    ListenAddress address;
    if (!parse_listen_address(text, address))
      s.fail("listen", fmt::format("expected IPv4:port or [IPv6]:port, got '{}'", text));
    c.listen.push_back(address);
  }
  if (c.listen.empty()) s.fail("listen", "at least one address is needed");

  c.hostname = s.get_string("hostname", common::host_name());
  if (!common::is_valid_domain(c.hostname))
    s.fail("hostname", fmt::format("'{}' is not a valid domain name; set hostname explicitly", c.hostname));

  c.max_message_size = s.get_size("max_message_size", c.max_message_size, 1024, std::uint64_t(1) << 31);
  c.max_recipients = static_cast<std::size_t>(s.get_int("max_recipients", c.max_recipients, 1, 100000));
  // RFC 5321 §4.5.3.2 sets minimums of several minutes; below 10s no real client copes.
  c.command_timeout = s.get_duration("command_timeout", c.command_timeout, seconds(10), seconds(3600));
  c.data_timeout = s.get_duration("data_timeout", c.data_timeout, seconds(10), seconds(3600));
  c.max_connections = static_cast<int>(s.get_int("max_connections", c.max_connections, 1, 1000000));
  c.max_connections_per_client =
      static_cast<int>(s.get_int("max_connections_per_client", c.max_connections_per_client, 1, c.max_connections));
  c.max_errors = static_cast<int>(s.get_int("max_errors", c.max_errors, 1, 1000));
  c.store_connections = static_cast<int>(s.get_int("store_connections", c.store_connections, 1, 256));
  // Each check holds 64 MiB while it runs: the thread count bounds that memory.
  c.auth_check_threads = static_cast<int>(s.get_int("auth_check_threads", c.auth_check_threads, 1, 64));
  c.auth_check_queue = static_cast<int>(s.get_int("auth_check_queue", c.auth_check_queue, 1, 100000));
  c.recipient_cache_time = s.get_duration("recipient_cache_time", c.recipient_cache_time, seconds(0), seconds(3600));
  c.queue_max_size = s.get_size("queue_max_size", c.queue_max_size, 0, std::uint64_t(1) << 60);
  if (c.queue_max_size != 0 && c.queue_max_size < (std::uint64_t(1) << 20))
    s.fail("queue_max_size", "0 (off) or at least 1M: an empty queue database is bigger than that");
  c.queue_size_check_interval =
      s.get_duration("queue_size_check_interval", c.queue_size_check_interval, seconds(1), seconds(300));

  read_backlog_keys(s, c);

  for (const auto& text : s.get_list("trusted_networks", {})) {
    auto cidr = Cidr::parse(text);
    if (!cidr) s.fail("trusted_networks", fmt::format("'{}' is not an address or network such as 192.0.2.0/24", text));
    c.trusted_networks.push_back(*cidr);
  }

  // "trusted_networks" in the list stands for every network listed there.
  for (const auto& text : s.get_list("limit_exceptions", {"127.0.0.0/8", "::1/128", "trusted_networks"})) {
    if (text == "trusted_networks") {
      c.limit_exceptions.insert(c.limit_exceptions.end(), c.trusted_networks.begin(), c.trusted_networks.end());
      continue;
    }
    auto cidr = Cidr::parse(text);
    if (!cidr)
      s.fail("limit_exceptions",
             fmt::format("'{}' is not an address, a network such as 192.0.2.0/24, or the word trusted_networks", text));
    c.limit_exceptions.push_back(*cidr);
  }

  read_protection_keys(s, c);
  read_tls_keys(s, c);
  read_milter_keys(s, c);
  s.finish();
  return c;
}

}  // namespace wsmtp::listener
