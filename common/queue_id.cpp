// Decimal, without padding: short enough to read out on the phone, and what
// the database shows, so an operator's SQL and our logs agree.
#include "queue_id.h"

#include <charconv>

namespace wsmtp::common {

std::string format_queue_id(std::int64_t msg_id) { return std::to_string(msg_id); }

std::optional<std::int64_t> parse_queue_id(std::string_view text) {
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;  // no sign, no space
  std::int64_t id = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), id);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size() || id <= 0) return std::nullopt;
  return id;
}

}  // namespace wsmtp::common
