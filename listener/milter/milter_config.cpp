#include "milter/milter_config.h"

#include <arpa/inet.h>

#include <charconv>

#include <fmt/format.h>

#include "ascii.h"
#include "config/config_file.h"

namespace wsmtp::listener::milter {

namespace {

std::string_view trim(std::string_view s) { return common::trim_blanks(s); }

// Splits at commas outside braces.
std::vector<std::string_view> split_top_level(std::string_view text) {
  std::vector<std::string_view> parts;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '{') {
      if (++depth > 1) throw MilterConfigError("nested '{' in the milter list");
    } else if (text[i] == '}') {
      if (--depth < 0) throw MilterConfigError("'}' without '{' in the milter list");
    } else if (text[i] == ',' && depth == 0) {
      parts.push_back(trim(text.substr(start, i - start)));
      start = i + 1;
    }
  }
  if (depth != 0) throw MilterConfigError("'{' without '}' in the milter list");
  parts.push_back(trim(text.substr(start)));
  return parts;
}

std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    auto comma = text.find(',', start);
    parts.push_back(trim(text.substr(start, comma == std::string_view::npos ? comma : comma - start)));
    if (comma == std::string_view::npos) return parts;
    start = comma + 1;
  }
}

void parse_address(std::string_view address, MilterSpec& spec) {
  spec.name = std::string(address);
  if (common::istarts_with(address, "unix:")) {
    spec.transport = MilterSpec::Transport::unix_socket;
    spec.path = std::string(address.substr(5));
    if (spec.path.empty() || spec.path.front() != '/')
      throw MilterConfigError(fmt::format("'{}': a unix socket needs an absolute path", address));
    if (spec.path.size() >= 108) throw MilterConfigError(fmt::format("'{}': socket path too long", address));
    return;
  }
  if (!common::istarts_with(address, "inet:") && !common::istarts_with(address, "inet6:"))
    throw MilterConfigError(fmt::format("'{}': expected inet:ADDRESS:PORT or unix:/PATH", address));
  auto rest = address.substr(address.find(':') + 1);
  auto colon = rest.rfind(':');
  if (colon == std::string_view::npos)
    throw MilterConfigError(fmt::format("'{}': expected inet:ADDRESS:PORT", address));
  auto host = rest.substr(0, colon);
  auto port = rest.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::string host_text(host);
  unsigned char buf[16];
  if (inet_pton(AF_INET, host_text.c_str(), buf) != 1 && inet_pton(AF_INET6, host_text.c_str(), buf) != 1)
    throw MilterConfigError(
        fmt::format("'{}': '{}' is not a numeric IP address (the listener does not resolve names)", address, host));
  unsigned value = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || value == 0 || value > 65535)
    throw MilterConfigError(fmt::format("'{}': '{}' is not a port number", address, port));
  spec.transport = MilterSpec::Transport::inet;
  spec.host = std::move(host_text);
  spec.port = static_cast<std::uint16_t>(value);
}

std::chrono::milliseconds parse_timeout(std::string_view milter, std::string_view key, std::string_view value) {
  auto d = common::parse_duration(value);
  if (!d || d->count() < 1 || d->count() > 3600)
    throw MilterConfigError(
        fmt::format("'{}': {} = '{}' must be a duration from 1s to 1h (e.g. 30s)", milter, key, value));
  return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

MilterSpec parse_one(std::string_view item, const MilterSpec& defaults) {
  MilterSpec spec = defaults;
  if (item.empty()) throw MilterConfigError("empty entry in the milter list");
  if (item.front() != '{') {
    parse_address(item, spec);
    return spec;
  }
  if (item.back() != '}') throw MilterConfigError(fmt::format("'{}': text after '}}'", item));
  auto parts = split_commas(item.substr(1, item.size() - 2));
  parse_address(parts.front(), spec);
  for (std::size_t i = 1; i < parts.size(); ++i) {
    auto eq = parts[i].find('=');
    if (eq == std::string_view::npos)
      throw MilterConfigError(fmt::format("'{}': expected key = value, got '{}'", spec.name, parts[i]));
    auto key = trim(parts[i].substr(0, eq));
    auto value = trim(parts[i].substr(eq + 1));
    if (key == "default_action") {
      try {
        spec.default_action = parse_default_action(value);
      } catch (const MilterConfigError& e) {
        throw MilterConfigError(fmt::format("'{}': {}", spec.name, e.what()));
      }
    } else if (key == "connect_timeout") {
      spec.connect_timeout = parse_timeout(spec.name, key, value);
    } else if (key == "command_timeout") {
      spec.command_timeout = parse_timeout(spec.name, key, value);
    } else if (key == "content_timeout") {
      spec.content_timeout = parse_timeout(spec.name, key, value);
    } else {
      throw MilterConfigError(
          fmt::format("'{}': unknown setting '{}' (default_action, connect_timeout, command_timeout, content_timeout)",
                      spec.name, key));
    }
  }
  return spec;
}

}  // namespace

DefaultAction parse_default_action(std::string_view word) {
  if (word == "tempfail") return DefaultAction::tempfail;
  if (word == "accept") return DefaultAction::accept;
  if (word == "reject") return DefaultAction::reject;
  if (word == "quarantine") return DefaultAction::quarantine;
  throw MilterConfigError(fmt::format("default action '{}' is not one of tempfail, accept, reject, quarantine", word));
}

std::string_view default_action_name(DefaultAction action) {
  switch (action) {
    case DefaultAction::tempfail:
      return "tempfail";
    case DefaultAction::accept:
      return "accept";
    case DefaultAction::reject:
      return "reject";
    case DefaultAction::quarantine:
      return "quarantine";
  }
  return "unknown";
}

MilterSpecs parse_milters(std::string_view text, const MilterSpec& defaults) {
  MilterSpecs specs;
  text = trim(text);
  if (text.empty()) return specs;
  for (auto item : split_top_level(text)) specs.push_back(parse_one(item, defaults));
  return specs;
}

}  // namespace wsmtp::listener::milter
