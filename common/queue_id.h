// The queue id: the one name of a message that people see, in the 250 reply,
// the Received: header, every log line ("msg=<queue id>") and wsmtpctl. It is
// the message's database id in decimal, and the id names its shard: shard N
// issues the ids N·10^14 + 1 .. (N+1)·10^14 − 1 (its messages_id_seq range,
// set by `wsmtpctl db migrate`), so the digits before the last fourteen are
// the shard's id and shard 0's ids are plain small numbers. This file is the
// only place that says so. Pure: no PostgreSQL, no I/O.
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

// Ids per shard: 10^14 (three centuries at 10,000 messages a second), a
// power of ten so a person reads the shard off the queue id.
inline constexpr std::int64_t kShardIdSpan = 100'000'000'000'000;
// The largest shard id whose range fits in a bigint.
inline constexpr int kMaxShardId = 92'000;
// The shard that issued msg_id.
inline int shard_of(std::int64_t msg_id) { return static_cast<int>(msg_id / kShardIdSpan); }

// The visible form of msg_id (> 0): "4711", "100000000004711" on shard 1.
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
