#include "mailbox_destination.h"

#include <fmt/format.h>

#include "context.h"

namespace wsmtp::ctl {
namespace {

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

std::string absolute_path(const char* flag, const std::string& path) {
  if (path.empty() || path.front() != '/') throw UsageError(fmt::format("{} {}: must be an absolute path", flag, path));
  if (path.find_first_of(std::string("\n\r\0", 3)) != std::string::npos)
    throw UsageError(fmt::format("{}: a path may not contain line breaks or NUL", flag));
  return path;
}

// deliver/lmtp.cpp reads a destination starting with '/' as a Unix socket and
// anything else as host:port, split at the last colon.
std::string lmtp_server(const std::string& text) {
  if (text.rfind("unix:", 0) == 0) {
    if (text.size() == 5 || text[5] != '/')
      throw UsageError(fmt::format("--lmtp {}: the socket must be an absolute path", text));
    return absolute_path("--lmtp", text.substr(5));
  }
  if (!text.empty() && text.front() == '/') return absolute_path("--lmtp", text);
  auto colon = text.rfind(':');
  const std::string expected = fmt::format("--lmtp {}: expected HOST:PORT or unix:/path/to/socket", text);
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) throw UsageError(expected);
  auto host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.front() == '-' || host.front() == '.' || host.find_first_not_of(".-") == std::string::npos)
    throw UsageError(expected);
  for (char c : host)
    if (!is_host_char(c))
      throw UsageError(fmt::format("--lmtp {}: '{}' is not a host name or IPv4 address", text, host));
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
      std::stoi(port) > 65535)
    throw UsageError(fmt::format("--lmtp {}: port must be 1-65535", text));
  return text;
}

}  // namespace

std::string mailbox_destination(const DestinationArgs& a) {
  auto only = [&a](const char* flag, const std::string& value, const std::string& wanted_transport) {
    if (!value.empty() && a.transport != wanted_transport)
      throw UsageError(fmt::format("{} goes with --transport {}, not {}", flag, wanted_transport, a.transport));
  };
  only("--maildir", a.maildir, "maildir");
  only("--mbox", a.mbox, "mbox");
  only("--lmtp", a.lmtp, "lmtp");
  if (a.transport == "maildir") {
    if (a.maildir.empty()) throw UsageError("--transport maildir needs --maildir DIR (the Maildir's absolute path)");
    return absolute_path("--maildir", a.maildir);
  }
  if (a.transport == "mbox") {
    if (a.mbox.empty()) throw UsageError("--transport mbox needs --mbox FILE (the spool file's absolute path)");
    return absolute_path("--mbox", a.mbox);
  }
  if (a.transport == "lmtp") {
    if (a.lmtp.empty()) throw UsageError("--transport lmtp needs --lmtp HOST:PORT or --lmtp unix:/path/to/socket");
    return lmtp_server(a.lmtp);
  }
  throw UsageError(fmt::format("--transport {}: expected maildir, mbox or lmtp", a.transport));
}

}  // namespace wsmtp::ctl
