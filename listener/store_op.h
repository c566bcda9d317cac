// The requests a session makes of the queue, as values. The session only names
// what it needs; store_worker runs it on a Store in another thread and hands the
// StoreResult back. Pure: no threads, no libevent, no SQL.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "store.h"

namespace wsmtp::listener {

class QueueIdReserve;

struct CheckRecipient {
  std::string address;  // lookup key, lower-case local@domain
  std::string domain;   // lower-case
};
// The session's message needs its queue id and the reserve was empty: one id
// (StoreResult::msg_id), reserving a block ahead for the other sessions.
struct TakeQueueId {};
// The reserve runs low: a block is added, nobody waits for it (no session).
struct RefillQueueIds {};
struct BeginMessage {
  std::int64_t msg_id = 0;  // the queue id the session took
  common::NewMessage message;
};
struct AppendBody {
  std::int64_t msg_id = 0;
  int seq = 0;
  std::string bytes;
};
struct CommitMessage {
  std::int64_t msg_id = 0;
  std::int64_t size = 0;
  std::string fair_client;  // NewMessage::fair_client of its BeginMessage
  common::ReceiptEdits edits{};
};
struct AbortMessage {
  std::int64_t msg_id = 0;
};
// A message that fit in one chunk: created, stored and moved to state 1 in one
// transaction, possibly together with other sessions' (store_worker batches them).
struct StoreWhole {
  common::CompleteMessage message;
};
struct VerifyUser {
  std::string username;
  std::string password;  // never logged (describe() leaves it out)
};

using StoreOp = std::variant<CheckRecipient, TakeQueueId, RefillQueueIds, BeginMessage, AppendBody, CommitMessage,
                             AbortMessage, StoreWhole, VerifyUser>;

struct StoreResult {
  bool ok = false;
  common::RecipientVerdict verdict = common::RecipientVerdict::unknown_local;  // CheckRecipient
  std::int64_t msg_id = 0;                                                     // TakeQueueId
  bool verified = false;                                                       // VerifyUser
  bool auth_blocked = false;  // VerifyUser not run: the address failed too often (ClientLimits)
  bool no_shard = false;      // TakeQueueId not run: no queue shard can take mail
  std::string error;          // when !ok, for the log
};

// Runs op on store; the queue id ops use ids (without one, TakeQueueId reserves
// a single id and RefillQueueIds does nothing). Never throws: any exception
// becomes {ok = false, error = what()} (STYLE §4: the listener catches per unit
// of work and answers 451).
StoreResult run_store_op(common::Store& store, const StoreOp& op, QueueIdReserve* ids = nullptr) noexcept;

// "append_body msg=42" and the like, for log lines; never includes body bytes.
std::string describe(const StoreOp& op);

}  // namespace wsmtp::listener
