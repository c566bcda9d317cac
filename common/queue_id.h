// The queue id: the one name of a message that people see, in the 250 reply,
// the Received: header, every log line ("msg=<queue id>") and wsmtpctl. Today
// it is the message's database id in decimal; this file is the only place that
// says so, so that a queue id naming its shard (issue 17) changes nothing else.
// Pure: no PostgreSQL, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace wsmtp::common {

// A message id on its way into text: log::info("msg={} ...", qid(id)).
struct QueueId {
  std::int64_t msg_id = 0;
};
inline QueueId qid(std::int64_t msg_id) { return QueueId{msg_id}; }

// The visible form of msg_id (> 0): "4711".
std::string format_queue_id(std::int64_t msg_id);
// The message id named by text as format_queue_id() writes it; nullopt for
// anything else (empty, signs, spaces, other characters, zero, overflow).
std::optional<std::int64_t> parse_queue_id(std::string_view text);

}  // namespace wsmtp::common

template <>
struct fmt::formatter<wsmtp::common::QueueId> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(wsmtp::common::QueueId id, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(wsmtp::common::format_queue_id(id.msg_id), ctx);
  }
};
