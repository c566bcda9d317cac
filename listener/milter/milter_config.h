// [listener] milters and its defaults, as MilterSpecs. Pure: text in, specs
// out, so every syntax error is a unit-testable message naming what is wrong.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "milter/milter_spec.h"

namespace wsmtp::listener::milter {

// The message names the milter and the part that is wrong; config.cpp puts it
// behind the file, line and key.
class MilterConfigError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// "inet:127.0.0.1:11332, unix:/run/opendkim/opendkim.sock" or, per milter,
// Postfix 3's "{ inet:127.0.0.1:11332, default_action = accept,
// command_timeout = 10s }". Each milter starts from `defaults` (the
// milter_* keys). inet takes a numeric address ("[::1]" for IPv6): the
// listener never waits on DNS.
MilterSpecs parse_milters(std::string_view text, const MilterSpec& defaults);

// "tempfail", "accept", "reject", "quarantine", and back.
DefaultAction parse_default_action(std::string_view word);
std::string_view default_action_name(DefaultAction action);

}  // namespace wsmtp::listener::milter
