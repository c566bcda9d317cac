// Read-only views of the queue for operators (wsmtpctl queue).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "msg_state.h"

namespace wsmtp::common::pg {

struct StateSummary {
  MsgState state;
  std::int64_t count = 0;
  std::int64_t held = 0;
  double oldest_age_seconds = 0;  // time in this state of the oldest message; 0 if none
};

// One entry per state 0-5, including empty ones.
std::vector<StateSummary> queue_summary(pqxx::transaction_base& tx);

// A destination the deliverers skip until its backoff ends (schema 021).
struct BackedOffDestination {
  std::string transport;
  std::string destination;
  int failures = 0;         // in a row
  double seconds_left = 0;  // of the backoff
  std::string last_error;
};

// Destinations backed off now, the longest remaining first.
std::vector<BackedOffDestination> backed_off_destinations(pqxx::transaction_base& tx);

// One backlog key of the listener's backpressure (schema 020, backlog_counts).
struct BacklogEntry {
  std::string kind;        // "sender domain", "client" or "user"
  std::string name;        // the key without its prefix
  std::int64_t count = 0;  // undelivered messages (states 1-4)
};

// The `limit` keys with the most undelivered mail, largest first; keys whose
// total is 0 are left out.
std::vector<BacklogEntry> top_backlogs(pqxx::transaction_base& tx, int limit);

}  // namespace wsmtp::common::pg
