// One configured milter ([listener] milters) and what to do when it fails.
// Parsed by listener/config.cpp (parse_milters), used by Chain.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace wsmtp::listener::milter {

// What a milter that cannot be reached, times out or breaks the protocol
// means for the session (Postfix's milter_default_action):
//   tempfail:   every later command of the session gets 451 4.7.1 (the default);
//   accept:     the milter is left out for the rest of the session;
//   reject:     every later command of the session gets 550 5.7.1;
//   quarantine: as accept, but every message the session sends is held.
enum class DefaultAction { tempfail, accept, reject, quarantine };

struct MilterSpec {
  std::string name;  // as configured, for logs: "inet:127.0.0.1:11332"
  enum class Transport { inet, unix_socket } transport = Transport::inet;
  std::string host;  // inet: a numeric IPv4 or IPv6 address (no DNS in the loop)
  std::uint16_t port = 0;
  std::string path;  // unix_socket
  DefaultAction default_action = DefaultAction::tempfail;
  // Postfix's milter_connect_timeout (connect and negotiation),
  // milter_command_timeout (each connect, HELO, MAIL, RCPT, DATA reply) and
  // milter_content_timeout (header, body and end-of-message replies).
  std::chrono::milliseconds connect_timeout{30'000};
  std::chrono::milliseconds command_timeout{30'000};
  std::chrono::milliseconds content_timeout{300'000};
};

using MilterSpecs = std::vector<MilterSpec>;

}  // namespace wsmtp::listener::milter
