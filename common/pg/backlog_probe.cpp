#include "pg/backlog_probe.h"

#include <fmt/format.h>

#include "log.h"
#include "pg/connection.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {

BacklogProbe::BacklogProbe(std::string conninfo, Query query)
    : conninfo_(with_connect_timeout(conninfo, 3)), query_(std::move(query)) {}

std::optional<std::int64_t> BacklogProbe::operator()() {
  if (!conn_ && std::chrono::steady_clock::now() < retry_at_) return std::nullopt;
  try {
    if (!conn_ || !conn_->is_open()) conn_ = connect(conninfo_);
    pqxx::read_transaction tx(*conn_);
    return query_(tx);
  } catch (const std::exception& e) {
    if (conn_) log::warn("backlog query failed: {}", e.what());
    conn_.reset();
    retry_at_ = std::chrono::steady_clock::now() + kRetryAfter;
    return std::nullopt;
  }
}

std::int64_t delivery_backlog(pqxx::transaction_base& tx, const std::vector<std::string>& transports,
                              std::int64_t cap) {
  // Bounded like the routing backlog: counting "enough" is as good as counting all.
  // OFFSET 0 keeps the EXISTS a per-message index lookup: as a semi join the
  // planner, misled by a queue table's statistics (empty a moment ago, full
  // now), scanned every pending delivery for every message (measured 40-60 ms
  // per call during a burst, once a second per supervisor).
  // Fresh and deferred mail are counted through their own claim indexes (022).
  static const std::string kLane =
      "SELECT 1 FROM messages m WHERE m.state = 3 AND NOT m.held AND m.delivering_at IS {} NULL "
      "AND m.next_attempt_at <= now() AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id "
      "AND d.status = 'pending' AND d.transport = ANY($1::text[]) AND d.next_attempt_at <= now() OFFSET 0) "
      "LIMIT $2";
  static const std::string kCount = "SELECT least(count(*), $2) FROM ((" + fmt::format(fmt::runtime(kLane), "") +
                                    ") UNION ALL (" + fmt::format(fmt::runtime(kLane), "NOT") + ")) q";
  return tx.exec_params1(kCount, text_array(transports), cap)[0].as<std::int64_t>();
}

}  // namespace wsmtp::common::pg
