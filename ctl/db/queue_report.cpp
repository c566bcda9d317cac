#include "db/queue_report.h"

namespace wsmtp::common::pg {

std::vector<StateSummary> queue_summary(pqxx::transaction_base& tx) {
  auto rows = tx.exec(
      "SELECT s.state, count(m.id), count(m.id) FILTER (WHERE m.held), "
      "       COALESCE(extract(epoch FROM now() - min(m.state_changed_at)), 0)::float8 "
      "FROM msg_states s LEFT JOIN messages m ON m.state = s.state "
      "GROUP BY s.state ORDER BY s.state");
  std::vector<StateSummary> out;
  for (const auto& row : rows)
    out.push_back({static_cast<MsgState>(row[0].as<int>()), row[1].as<std::int64_t>(), row[2].as<std::int64_t>(),
                   row[3].as<double>()});
  return out;
}

std::vector<BackedOffDestination> backed_off_destinations(pqxx::transaction_base& tx) {
  auto rows = tx.exec(
      "SELECT transport, destination, failures, extract(epoch FROM backoff_until - now())::float8, "
      "       COALESCE(last_error, '') "
      "FROM destination_backoff WHERE backoff_until > now() ORDER BY backoff_until DESC, transport, destination");
  std::vector<BackedOffDestination> out;
  for (const auto& row : rows)
    out.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<int>(), row[3].as<double>(),
                   row[4].as<std::string>()});
  return out;
}

std::vector<BacklogEntry> top_backlogs(pqxx::transaction_base& tx, int limit) {
  auto rows = tx.exec_params(
      "SELECT key, sum(n)::bigint AS total FROM backlog_counts GROUP BY key HAVING sum(n) > 0 "
      "ORDER BY total DESC, key LIMIT $1",
      limit);
  std::vector<BacklogEntry> out;
  for (const auto& row : rows) {
    auto key = row[0].as<std::string>();
    std::string kind = key.starts_with("u:") ? "user" : key.starts_with("d:") ? "sender domain" : "client";
    out.push_back({std::move(kind), key.substr(key.size() >= 2 ? 2 : 0), row[1].as<std::int64_t>()});
  }
  return out;
}

}  // namespace wsmtp::common::pg
