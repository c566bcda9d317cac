#include "db/queue.h"

#include "pg/sql_util.h"

namespace wsmtp::common::pg {

void configure_router_session(pqxx::connection_base& conn) {
  if (conn.get_variable("synchronous_commit") != "off") conn.set_variable("synchronous_commit", "off");
}

std::int64_t routing_backlog(pqxx::transaction_base& tx, std::int64_t cap) {
  // Bounded: an enormous backlog costs no more to count than "enough".
  return tx
      .exec_params1(
          "SELECT count(*) FROM (SELECT 1 FROM messages WHERE state "
          "= 1 AND NOT held LIMIT $1) q",
          cap)[0]
      .as<std::int64_t>();
}

int prune_route_fairness(pqxx::transaction_base& tx, int limit) {
  auto r = tx.exec_params(
      "DELETE FROM route_fairness WHERE fair_key IN ("
      "  SELECT fair_key FROM route_fairness "
      "  WHERE next_vtime < (extract(epoch FROM "
      "clock_timestamp()) * 1000)::bigint "
      "  LIMIT $1 FOR UPDATE SKIP LOCKED)",
      limit);
  return static_cast<int>(r.affected_rows());
}

mail::HeaderBlock read_message_headers(pqxx::transaction_base& tx, std::int64_t msg_id,
                                       const mail::HeaderLimits& limits) {
  mail::HeaderCollector collector(limits);
  int next = 0;
  constexpr int kChunksPerFetch = 2;
  for (bool done = false; !done;) {
    auto rows = tx.exec_params(
        "SELECT seq, data FROM body_chunks WHERE message_id = "
        "$1 AND seq >= $2 ORDER BY seq LIMIT $3",
        msg_id, next, kChunksPerFetch);
    for (const auto& row : rows) {
      next = row[0].as<int>() + 1;
      if (collector.feed(bytea_value(row[1]))) {
        done = true;
        break;
      }
    }
    if (rows.size() < static_cast<std::size_t>(kChunksPerFetch)) done = true;
  }
  return collector.block();
}

}  // namespace wsmtp::common::pg
