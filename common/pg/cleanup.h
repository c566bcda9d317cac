// Deleting finished and abandoned messages (the reaper's housekeeping). Not state
// transitions: a deleted message has left the machine. Batched by an index so a
// pass never holds long locks or bloats the tables at millions of rows.
#pragma once

#include <chrono>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// State-0 messages older than `older_than` (receipts that were aborted and whose
// listener died before cleaning up). Returns how many were deleted.
int delete_aborted(pqxx::connection& conn, std::chrono::seconds older_than, int limit);
// State-5 messages done for longer than `older_than`, with body and deliveries.
int delete_done(pqxx::connection& conn, std::chrono::seconds older_than, int limit);
// Merges up to `limit` rows of the backlog counters (schema 020, backlog_fold)
// that no transaction holds and drops keys that reached zero; every key's
// total stays the same. Never waits on a writer; returns 0 while another fold
// runs. Returns how many rows it merged.
int fold_backlog_counts(pqxx::connection& conn, int limit);

}  // namespace wsmtp::common::pg
