// The operator's selection of messages ("every held message from this sender
// older than an hour"), shared by wsmtpctl list/hold/release/delete/retry/bounce
// and turned into one parameterised WHERE clause here, so every bulk action
// selects exactly what `list` with the same flags shows.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "msg_state.h"

namespace wsmtp::common::pg {

struct MessageFilter {
  std::vector<std::int64_t> ids;
  std::optional<MsgState> state;
  std::optional<std::chrono::seconds> older_than;  // time since the message was created
  std::optional<std::string> sender;               // exact envelope sender ("" = null sender)
  std::optional<std::string> recipient;            // an envelope recipient or a final delivery recipient
  std::optional<std::string> client;               // client IP address or CIDR
  std::optional<bool> held;
  bool deferred = false;  // has a pending delivery that failed at least once
  int limit = 1000;

  bool empty() const {
    return ids.empty() && !state && !older_than && !sender && !recipient && !client && !held && !deferred;
  }
};

// The ids matching the filter (at most filter.limit, oldest first). With lock,
// the rows are locked FOR UPDATE for the caller's transaction.
std::vector<std::int64_t> select_messages(pqxx::transaction_base& tx, const MessageFilter& filter, bool lock = false);

}  // namespace wsmtp::common::pg
