// Bulk operator actions on selected messages (wsmtpctl hold, release, delete,
// retry, bounce) and the reaper's queue-lifetime expiry. None of these moves a
// message's state (that is transitions.cpp): they set flags, due times and
// delivery outcomes, and wake the deliverers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

int hold_messages(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids, const std::string& reason);
int release_messages(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids);
// Deletes the messages with recipients, body and deliveries.
int delete_messages(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids);
// Makes every pending delivery of these messages due now. Returns deliveries touched.
int retry_now(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids);
// Gives up the pending deliveries of routed (state 3) messages: they become
// bounced with `reason`, and the deliverer that finishes the message sends the DSN.
// Returns deliveries bounced.
int bounce_pending(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids, const std::string& reason);

// Reaper: pending deliveries of routed messages received longer ago than
// `lifetime` are bounced (4.4.7). Own transaction; returns deliveries bounced.
int expire_queue_lifetime(pqxx::connection& conn, std::chrono::seconds lifetime, int limit);

}  // namespace wsmtp::common::pg
