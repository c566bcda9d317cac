// Holds and releases (transitions_hold.h). Holds and releases leave the stamps
// to the schema (no state moves here) and the wake-ups to the explicit NOTIFY
// of release_messages.
#include "pg/transitions_hold.h"

#include "log.h"
#include "queue_id.h"
#include "pg/sql_util.h"
#include "pg/waiter.h"

namespace wsmtp::common::pg {

// A message under a live lease (states 2 and 4) is not taken from its worker:
// the worker learns of the hold at its next lease renewal (within seconds),
// finishes what is in flight and starts nothing more for it (DESIGN.md,
// deploy/README.md "Holding or deleting a message in work").
MessageIds hold_messages(pqxx::transaction_base& tx, const MessageIds& ids, const std::string& reason) {
  auto rows = tx.exec_params(
      "UPDATE messages SET held = true, held_reason = $2 WHERE id = ANY($1::bigint[]) AND state < 5 AND NOT held "
      "RETURNING id, CASE WHEN lease_expires > now() THEN lease_owner END",
      bigint_array(ids), reason);
  for (const auto& r : rows) {
    if (r[1].is_null())
      log::info("msg={} held by operator: {}", qid(r[0].as<std::int64_t>()), reason);
    else
      log::info("msg={} held by operator: {}; worker {} finishes the step in flight and starts nothing more",
                qid(r[0].as<std::int64_t>()), reason, r[1].as<std::string>());
  }
  return sorted_ids(rows);
}

MessageIds release_messages(pqxx::transaction_base& tx, const MessageIds& ids) {
  auto rows = tx.exec_params(
      "UPDATE messages SET held = false, held_reason = NULL, expired_claims = 0, routing_failures = 0 "
      "WHERE id = ANY($1::bigint[]) AND held RETURNING id, state",
      bigint_array(ids));
  for (const auto& r : rows) log::info("msg={} released by operator", qid(r[0].as<std::int64_t>()));
  // A release gives the message a fresh set of attempts (lease expiries and
  // routing failures alike). Released work must not wait for the next poll.
  tx.exec("SELECT pg_notify('" + std::string(kRouteChannel) + "', ''), pg_notify('" + kDeliverChannel + "', '')");
  return sorted_ids(rows);
}

bool hold_message(pqxx::transaction_base& tx, std::int64_t msg_id, const std::string& reason) {
  return hold_messages(tx, {msg_id}, reason).size() == 1;
}

bool release_message(pqxx::transaction_base& tx, std::int64_t msg_id) {
  return release_messages(tx, {msg_id}).size() == 1;
}

RoutingFailure record_routing_failure(pqxx::connection& conn, const Lease& lease, const std::string& error,
                                      int max_failures, std::chrono::seconds max_wait) {
  pqxx::work tx(conn);
  auto rows = tx.exec_params(
      "UPDATE messages SET routing_failures = routing_failures + 1, last_error "
      "= $3::text, "
      "  held = routing_failures + 1 >= $4::int, "
      "  held_reason = CASE WHEN routing_failures + 1 >= $4::int "
      "                THEN format('routing failed %s times: %s', "
      "routing_failures + 1, $3::text) END, "
      "  lease_owner = '', "
      "  lease_expires = least(lease_expires, "
      "                        now() + make_interval(secs => least($5::float8, "
      "2 ^ routing_failures))) "
      "WHERE id = $1 AND state = 2 AND lease_token = $2::uuid "
      "RETURNING routing_failures, held",
      lease.msg_id, lease.token, error, max_failures, static_cast<double>(max_wait.count()));
  tx.commit();
  RoutingFailure f;
  if (rows.empty()) return f;
  f.recorded = true;
  f.failures = rows[0][0].as<int>();
  f.held = rows[0][1].as<bool>();
  if (f.held) log::warn("msg={} held after {} routing failures: {}", qid(lease.msg_id), f.failures, error);
  return f;
}

}  // namespace wsmtp::common::pg
