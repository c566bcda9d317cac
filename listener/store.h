// What the listener needs from the queue, as an interface free of PostgreSQL
// types, so the SMTP session and its worker pool can be tested against a fake.
// Implemented for real by db/message_store.cpp. All methods are blocking and throw
// on failure (the caller maps any exception to 451 4.3.0 and nothing is accepted).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "new_message.h"

namespace wsmtp::common {

// What the milters changed in a streamed message (state 0), applied in the
// transaction that commits it (schema 024, edit_receipt), so the message is
// never in state 1 without them.
struct ReceiptEdits {
  // The header section, stored as body chunk 0 (the listener streams a
  // milter-checked message's body from chunk 1 and keeps its header section
  // until the verdict).
  std::optional<std::string> header;
  std::optional<std::string> envelope_from;
  std::optional<std::vector<std::string>> recipients;  // the whole new list
  std::optional<std::string> held_reason;              // quarantined: stored held
  // A replaced body: chunks drop_first..drop_last (the original's) are
  // deleted; none when drop_last < drop_first.
  int drop_first = 0;
  int drop_last = -1;
  bool changes_envelope() const { return envelope_from || recipients || held_reason || drop_last >= drop_first; }
};

class Store {
 public:
  virtual ~Store() = default;
  // address is a lookup key (lower-case local@domain), domain lower-case.
  virtual RecipientVerdict check_recipient(const std::string& address, const std::string& domain) = 0;
  // `count` (1..1000) fresh message ids, never handed out before by any
  // listener on any host: a session names its message by one (the queue id in
  // Received: and 250) before the message is stored. Unused ids are gaps.
  virtual std::vector<std::int64_t> reserve_message_ids(int count) = 0;
  // Creates the message in state 0 under msg_id, one from reserve_message_ids.
  virtual void begin_message(std::int64_t msg_id, const NewMessage& message) = 0;
  virtual void append_body(std::int64_t msg_id, int seq, std::string_view data) = 0;
  // Moves the message 0 -> 1 and commits; throws if that did not happen.
  // fair_client: the client whose fair-order clock it advances, "" for none
  // (NewMessage::fair_client of its begin_message). edits: the milters'
  // changes, applied in the same transaction.
  virtual void commit_message(std::int64_t msg_id, std::int64_t size, const std::string& fair_client,
                              const ReceiptEdits& edits) = 0;
  // Deletes a message still in state 0 (best effort; the reaper catches the rest).
  virtual void abort_message(std::int64_t msg_id) = 0;

  // Stores several complete small messages (envelope and whole body) and moves
  // each to state 1, all in ONE transaction: one commit (one WAL flush) for the
  // lot, so concurrent sessions share the cost of durability (group commit).
  // Each is stored under its msg_id (from reserve_message_ids). All or nothing:
  // returns once committed, or throws and none exists.
  virtual void store_messages(const std::vector<CompleteMessage>& messages) = 0;

  // The queue database's size in bytes (pg_database_size), for
  // [listener] queue_max_size; asked every few seconds, never per command.
  virtual std::uint64_t queue_size() = 0;

  // Every backlog key (NewMessage::backlog_keys) whose undelivered mail is at
  // least `threshold` messages, and every key of `also` that has any, with its
  // total, for [listener] backlog_quota_*; asked every backlog_check_interval,
  // never per command.
  virtual std::vector<std::pair<std::string, std::uint64_t>> backlogs_at_least(
      std::uint64_t threshold, const std::vector<std::string>& also) = 0;

  // SMTP AUTH (RFC 4954): true only for an enabled user whose password matches.
  // Slow on purpose (argon2id); never called on an event loop.
  virtual bool verify_user(const std::string& username, const std::string& password) = 0;
};

}  // namespace wsmtp::common
