#include "db/mbox_journal.h"

namespace wsmtp::common::pg {

std::optional<std::int64_t> load_spool_offset(pqxx::connection& conn, std::int64_t delivery_id) {
  pqxx::nontransaction tx(conn);  // one row, one read
  auto rows = tx.exec_params("SELECT spool_offset FROM deliveries WHERE id = $1", delivery_id);
  if (rows.empty() || rows[0][0].is_null()) return std::nullopt;
  return rows[0][0].as<std::int64_t>();
}

void save_spool_offset(pqxx::connection& conn, std::int64_t delivery_id, std::int64_t offset) {
  // Durable before the first byte is appended: a crash after the append must
  // find it (synchronous_commit stays on).
  pqxx::work tx(conn);
  tx.exec_params0("UPDATE deliveries SET spool_offset = $2 WHERE id = $1 AND status = 'pending'", delivery_id, offset);
  tx.commit();
}

}  // namespace wsmtp::common::pg
