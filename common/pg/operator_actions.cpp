#include "pg/operator_actions.h"

#include <fmt/format.h>

#include "log.h"
#include "queue_id.h"
#include "pg/sql_util.h"
#include "pg/waiter.h"

namespace wsmtp::common::pg {

MessageIds delete_messages(pqxx::transaction_base& tx, const MessageIds& ids) {
  auto rows = tx.exec_params(
      "DELETE FROM messages WHERE id = ANY($1::bigint[]) "
      "RETURNING id, state, CASE WHEN lease_expires > now() THEN lease_owner END",
      bigint_array(ids));
  for (const auto& r : rows) {
    if (r[2].is_null())
      log::info("msg={} deleted by operator (was in state {})", qid(r[0].as<std::int64_t>()), r[1].as<int>());
    else
      log::info(
          "msg={} deleted by operator (was in state {} under a lease of {}: what is in flight cannot be "
          "recalled, nothing more is sent)",
          qid(r[0].as<std::int64_t>()), r[1].as<int>(), r[2].as<std::string>());
  }
  return sorted_ids(rows);
}

MessageIds retry_now(pqxx::transaction_base& tx, const MessageIds& ids) {
  auto rows = tx.exec_params(
      "WITH m AS (UPDATE messages SET next_attempt_at = now() WHERE id = ANY($1::bigint[]) AND state = 3 "
      "           AND NOT held AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id "
      "                                    AND d.status = 'pending') RETURNING id), "
      "d AS (UPDATE deliveries SET next_attempt_at = now() WHERE message_id IN (SELECT id FROM m) "
      "      AND status = 'pending') "
      "SELECT id FROM m ORDER BY id",
      bigint_array(ids));
  tx.exec(std::string("SELECT pg_notify('") + kDeliverChannel + "', '')");
  for (const auto& r : rows) log::info("msg={} retry requested by operator", qid(r[0].as<std::int64_t>()));
  return sorted_ids(rows);
}

std::vector<MessageSnapshot> message_snapshots(pqxx::transaction_base& tx, const MessageIds& ids) {
  auto rows = tx.exec_params(
      "SELECT m.id, m.state, m.held, COALESCE(m.lease_owner, ''), COALESCE(m.lease_expires > now(), false), "
      "  (SELECT count(*) FROM deliveries d WHERE d.message_id = m.id AND d.status = 'pending') "
      "FROM unnest($1::bigint[]) WITH ORDINALITY AS i(id, ord) JOIN messages m ON m.id = i.id ORDER BY i.ord",
      bigint_array(ids));
  std::vector<MessageSnapshot> out;
  for (const auto& r : rows)
    out.push_back({r[0].as<std::int64_t>(), r[1].as<int>(), r[2].as<bool>(), r[3].as<std::string>(), r[4].as<bool>(),
                   r[5].as<int>()});
  return out;
}

namespace {

// Bounces the pending deliveries of the given state-3 messages, whose rows the
// caller has locked, and makes the messages due so a deliverer finishes them.
int bounce_locked(pqxx::transaction_base& tx, const std::string& ids, const std::string& reason) {
  auto rows = tx.exec_params(
      "UPDATE deliveries SET status = 'bounced', final_at = now(), "
      "  last_error = $2 || COALESCE(' (last attempt: ' || last_error || ')', '') "
      "WHERE message_id = ANY($1::bigint[]) AND status = 'pending' RETURNING message_id, recipient",
      ids, reason);
  tx.exec_params("UPDATE messages SET next_attempt_at = now() WHERE id = ANY($1::bigint[])", ids);
  tx.exec(std::string("SELECT pg_notify('") + kDeliverChannel + "', '')");
  for (const auto& r : rows)
    log::info("msg={} rcpt={} bounced: {}", qid(r[0].as<std::int64_t>()), r[1].as<std::string>(), reason);
  return static_cast<int>(rows.size());
}

}  // namespace

int expire_queue_lifetime(pqxx::connection& conn, std::chrono::seconds lifetime, int limit) {
  pqxx::work tx(conn);
  auto locked = tx.exec_params(
      "SELECT m.id FROM messages m WHERE m.state = 3 AND m.received_at < now() - make_interval(secs => $1) "
      "AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.status = 'pending') "
      "ORDER BY m.received_at LIMIT $2 FOR UPDATE SKIP LOCKED",
      static_cast<double>(lifetime.count()), limit);
  std::vector<std::int64_t> ids;
  for (const auto& r : locked) ids.push_back(r[0].as<std::int64_t>());
  int n = ids.empty()
              ? 0
              : bounce_locked(tx, bigint_array(ids),
                              fmt::format("4.4.7 message expired: not delivered within {}h", lifetime.count() / 3600));
  tx.commit();
  return n;
}

}  // namespace wsmtp::common::pg
