// The quota arguments of `wsmtpctl mailbox add --quota/--quota-messages` and
// `mailbox quota`: a byte count in the configuration file's size syntax
// (common/byte_size.h) or a message count, either one "none". Pure: no database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace wsmtp::ctl {

// "50M", "2G", "512k", "1048576" -> bytes; "none" -> nullopt (no limit). Throws
// CommandError for a malformed size, zero, or 8 EiB and more.
std::optional<std::int64_t> parse_quota_bytes(const std::string& text);

// "1000" -> 1000; "none" -> nullopt. Throws CommandError unless a positive
// count of at most nine digits.
std::optional<std::int64_t> parse_quota_messages(const std::string& text);

}  // namespace wsmtp::ctl
