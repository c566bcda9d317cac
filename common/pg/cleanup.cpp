#include "pg/cleanup.h"

#include <fmt/format.h>

#include "log.h"
#include "queue_id.h"

namespace wsmtp::common::pg {
namespace {

int delete_in_state(pqxx::connection& conn, int state, std::chrono::seconds older_than, int limit, const char* why) {
  pqxx::work tx(conn);
  // SKIP LOCKED: several reapers split the work instead of waiting on each other.
  // = ANY(ARRAY(...)): the chosen rows are deleted by id, never by a join the
  // planner may turn into a scan of the whole table.
  auto rows = tx.exec_params(
      "DELETE FROM messages WHERE id = ANY(ARRAY(SELECT id FROM messages WHERE state = $1 "
      "  AND state_changed_at < now() - make_interval(secs => $2) "
      "  ORDER BY state_changed_at LIMIT $3 FOR UPDATE SKIP LOCKED)) RETURNING id",
      state, static_cast<double>(older_than.count()), limit);
  tx.commit();
  for (const auto& row : rows) log::info("msg={} deleted ({})", qid(row[0].as<std::int64_t>()), why);
  return static_cast<int>(rows.size());
}

}  // namespace

int delete_aborted(pqxx::connection& conn, std::chrono::seconds older_than, int limit) {
  return delete_in_state(conn, 0, older_than, limit, "aborted receipt");
}

int delete_done(pqxx::connection& conn, std::chrono::seconds older_than, int limit) {
  return delete_in_state(conn, 5, older_than, limit, "retention expired");
}

int fold_backlog_counts(pqxx::connection& conn, int limit) {
  pqxx::work tx(conn);
  auto moved = tx.exec_params1("SELECT backlog_fold($1)", limit)[0].as<int>();
  tx.commit();
  return moved;
}

}  // namespace wsmtp::common::pg
