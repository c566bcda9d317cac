#include "pg/body.h"

#include "pg/prepared.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {

namespace {
constexpr int kChunksPerFetch = 8;
}

void append_body_chunk(pqxx::transaction_base& tx, std::int64_t msg_id, int seq, std::string_view data) {
  pqxx::binarystring bytes(data.data(), data.size());
  tx.exec_params0("INSERT INTO body_chunks (message_id, seq, data) VALUES ($1, $2, $3)", msg_id, seq, bytes);
}

void read_body(pqxx::transaction_base& tx, std::int64_t msg_id, const std::function<void(std::string_view)>& sink) {
  int next = 0;
  for (;;) {
    auto rows =
        tx.exec_params("SELECT seq, data FROM body_chunks WHERE message_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
                       msg_id, next, kChunksPerFetch);
    for (const auto& row : rows) {
      sink(bytea_value(row[1]));
      next = row[0].as<int>() + 1;
    }
    if (rows.size() < static_cast<std::size_t>(kChunksPerFetch)) return;
  }
}

std::string read_body_start(pqxx::transaction_base& tx, std::int64_t msg_id, std::size_t max_bytes) {
  auto rows = tx.exec_params("SELECT data FROM body_chunks WHERE message_id = $1 ORDER BY seq LIMIT 4", msg_id);
  std::string start;
  for (const auto& row : rows) {
    start.append(bytea_value(row[0]));
    if (start.find("\r\n\r\n") != std::string::npos || start.size() >= max_bytes) break;
  }
  return start;
}

std::map<std::int64_t, std::string> read_small_bodies(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids,
                                                      std::size_t max_bytes) {
  std::map<std::int64_t, std::string> bodies;
  if (ids.empty()) return bodies;
  // OFFSET 0: one index probe per message for a second chunk, never a scan of
  // every chunk in the queue.
  auto rows = exec_prepared_sql(
      tx, "wsmtp_read_small_bodies",
      "SELECT c.message_id, c.data FROM body_chunks c "
      "WHERE c.message_id = ANY($1::bigint[]) AND c.seq = 0 AND octet_length(c.data) <= $2 "
      "  AND NOT EXISTS (SELECT 1 FROM body_chunks n WHERE n.message_id = c.message_id AND n.seq = 1 OFFSET 0)",
      bigint_array(ids), static_cast<std::int64_t>(max_bytes));
  for (const auto& row : rows) bodies.emplace(row[0].as<std::int64_t>(), bytea_value(row[1]));
  return bodies;
}

}  // namespace wsmtp::common::pg
