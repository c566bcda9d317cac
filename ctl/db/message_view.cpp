#include "db/message_view.h"

#include "pg/body.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {
namespace {

// ISO-8601 UTC text, '' for NULL.
std::string ts(const char* column) {
  return std::string("COALESCE(to_char(") + column + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')";
}

}  // namespace

std::vector<MessageDetail> load_messages(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids) {
  auto rows = tx.exec_params(
      "SELECT m.id, m.state, m.envelope_from, COALESCE(host(m.client_addr), ''), m.client_helo, m.received_by, "
      "m.size, " +
          ts("m.created_at") + ", " + ts("m.received_at") + ", " + ts("m.routing_at") + ", " + ts("m.routed_at") +
          ", " + ts("m.delivering_at") + ", " + ts("m.done_at") + ", " + ts("m.state_changed_at") + ", " +
          ts("m.next_attempt_at") + ", COALESCE(m.lease_owner, ''), " + ts("m.lease_expires") +
          ", m.expired_claims, m.held, COALESCE(m.held_reason, ''), COALESCE(m.last_error, ''), "
          "(SELECT count(*) FROM recipients r WHERE r.message_id = m.id), "
          "(SELECT count(*) FROM deliveries d WHERE d.message_id = m.id AND d.status = 'pending'), "
          "(SELECT count(*) FROM deliveries d WHERE d.message_id = m.id AND d.status = 'delivered'), "
          "(SELECT count(*) FROM deliveries d WHERE d.message_id = m.id AND d.status = 'bounced') "
          "FROM messages m WHERE m.id = ANY($1::bigint[]) ORDER BY m.id",
      bigint_array(ids));
  std::vector<MessageDetail> out;
  for (const auto& r : rows) {
    MessageDetail d;
    int i = 0;
    d.id = r[i++].as<std::int64_t>();
    d.state = static_cast<MsgState>(r[i++].as<int>());
    for (auto* s : {&d.envelope_from, &d.client_addr, &d.client_helo, &d.received_by}) *s = r[i++].as<std::string>();
    d.size = r[i++].as<std::int64_t>();
    for (auto* s : {&d.created_at, &d.received_at, &d.routing_at, &d.routed_at, &d.delivering_at, &d.done_at,
                    &d.state_changed_at, &d.next_attempt_at, &d.lease_owner, &d.lease_expires})
      *s = r[i++].as<std::string>();
    d.expired_claims = r[i++].as<int>();
    d.held = r[i++].as<bool>();
    d.held_reason = r[i++].as<std::string>();
    d.last_error = r[i++].as<std::string>();
    for (auto* n : {&d.recipients, &d.pending, &d.delivered, &d.bounced}) *n = r[i++].as<int>();
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<std::string> load_envelope_recipients(pqxx::transaction_base& tx, std::int64_t msg_id) {
  std::vector<std::string> out;
  for (const auto& r : tx.exec_params("SELECT address FROM recipients WHERE message_id = $1 ORDER BY seq", msg_id))
    out.push_back(r[0].as<std::string>());
  return out;
}

std::vector<DeliveryDetail> load_deliveries(pqxx::transaction_base& tx, std::int64_t msg_id) {
  std::vector<DeliveryDetail> out;
  auto rows = tx.exec_params("SELECT id, recipient, original_rcpt, transport, destination, status, attempts, " +
                                 ts("next_attempt_at") + ", COALESCE(last_error, ''), " + ts("final_at") +
                                 " FROM deliveries WHERE message_id = $1 ORDER BY id",
                             msg_id);
  for (const auto& r : rows)
    out.push_back({r[0].as<std::int64_t>(), r[1].as<std::string>(), r[2].as<std::string>(), r[3].as<std::string>(),
                   r[4].as<std::string>(), r[5].as<std::string>(), r[6].as<int>(), r[7].as<std::string>(),
                   r[8].as<std::string>(), r[9].as<std::string>()});
  return out;
}

std::string load_headers(pqxx::transaction_base& tx, std::int64_t msg_id, std::size_t max_bytes) {
  std::string out;
  bool done = false;
  // read_body streams every chunk; we stop copying at the end of the header
  // section (a few chunks at most for any sane message).
  read_body(tx, msg_id, [&](std::string_view chunk) {
    if (done) return;
    out += chunk;
    auto end = out.find("\r\n\r\n");
    if (end != std::string::npos) {
      out.resize(end + 2);
      done = true;
    } else if (out.size() >= max_bytes) {
      out.resize(max_bytes);
      done = true;
    }
  });
  return out;
}

std::string load_body_start(pqxx::transaction_base& tx, std::int64_t msg_id, std::size_t max_bytes) {
  std::string seen, body;
  bool in_body = false;
  read_body(tx, msg_id, [&](std::string_view chunk) {
    if (body.size() >= max_bytes) return;
    if (in_body) {
      body.append(chunk.substr(0, max_bytes - body.size()));
      return;
    }
    seen += chunk;
    if (auto end = seen.find("\r\n\r\n"); end != std::string::npos) {
      in_body = true;
      body = seen.substr(end + 4, max_bytes);
      std::string().swap(seen);
    }
  });
  return body;
}

Backlog backlog(pqxx::transaction_base& tx, int top) {
  Backlog b;
  b.deferred_messages =
      tx.exec1(
            "SELECT count(*) FROM messages m WHERE m.state = 3 AND EXISTS (SELECT 1 FROM deliveries d "
            "WHERE d.message_id = m.id AND d.status = 'pending' AND d.attempts > 0)")[0]
          .as<std::int64_t>();
  for (const auto& r : tx.exec_params("SELECT CASE WHEN envelope_from = '' THEN '<>' ELSE envelope_from END, count(*) "
                                      "FROM messages WHERE state < 5 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1",
                                      top))
    b.top_senders.emplace_back(r[0].as<std::string>(), r[1].as<std::int64_t>());
  for (const auto& r : tx.exec_params("SELECT split_part(recipient, '@', 2), count(*) FROM deliveries "
                                      "WHERE status = 'pending' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1",
                                      top))
    b.top_destinations.emplace_back(r[0].as<std::string>(), r[1].as<std::int64_t>());
  return b;
}

}  // namespace wsmtp::common::pg
