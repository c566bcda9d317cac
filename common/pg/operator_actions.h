// Bulk operator actions on selected messages (wsmtpctl delete, retry) and the
// reaper's queue-lifetime expiry. None of these writes a message's state, held
// flag or lease (hold and release are the state machine's, transitions_hold.h;
// the operator's bounce is transitions_bounce.h): they set due times and
// delivery outcomes, and wake the workers. Each action returns the ids it changed, so the caller can
// say why the others did not change (message_state_snapshot).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "pg/transitions_hold.h"

namespace wsmtp::common::pg {

// Deletes the messages with recipients, body and deliveries.
MessageIds delete_messages(pqxx::transaction_base& tx, const MessageIds& ids);
// Makes every pending delivery of ROUTED, unheld messages due now (a held
// message would not be claimed, and a DELIVERING one gets its next due time
// from the deliverer's finish, so touching either would change nothing).
MessageIds retry_now(pqxx::transaction_base& tx, const MessageIds& ids);

// What an operator needs to hear about a message an action left unchanged.
struct MessageSnapshot {
  std::int64_t id = 0;
  int state = 0;
  bool held = false;
  std::string lease_owner;
  bool lease_live = false;
  int pending = 0;  // pending deliveries
};
// In the order of ids; ids of no message are left out.
std::vector<MessageSnapshot> message_snapshots(pqxx::transaction_base& tx, const MessageIds& ids);

// Reaper: pending deliveries of routed messages received longer ago than
// `lifetime` are bounced (4.4.7). Own transaction; returns deliveries bounced.
int expire_queue_lifetime(pqxx::connection& conn, std::chrono::seconds lifetime, int limit);

}  // namespace wsmtp::common::pg
