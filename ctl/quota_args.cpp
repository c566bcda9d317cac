// The size syntax itself is common::parse_byte_size, shared with the
// configuration file; this file adds only "none" and "a quota is positive".
#include "quota_args.h"

#include <fmt/format.h>

#include "byte_size.h"
#include "context.h"

namespace wsmtp::ctl {

std::optional<std::int64_t> parse_quota_bytes(const std::string& text) {
  if (text == "none") return std::nullopt;
  auto bytes = common::parse_byte_size(text);
  if (!bytes) throw CommandError(fmt::format("'{}' is not a size such as 500M, 2G or none (below 8 EiB)", text));
  if (*bytes == 0) throw CommandError(fmt::format("'{}': a quota must be positive and below 8 EiB (or none)", text));
  return static_cast<std::int64_t>(*bytes);
}

std::optional<std::int64_t> parse_quota_messages(const std::string& text) {
  if (text == "none") return std::nullopt;
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos ||
      std::stoll(text) <= 0)
    throw CommandError(fmt::format("'{}' is not a message count (a positive number or none)", text));
  return std::stoll(text);
}

}  // namespace wsmtp::ctl
