#include "db/message_filter.h"

#include "pg/sql_util.h"

namespace wsmtp::common::pg {

std::vector<std::int64_t> select_messages(pqxx::transaction_base& tx, const MessageFilter& f, bool lock) {
  // Every condition is "parameter IS NULL OR condition", so one prepared shape
  // serves every combination of flags and nothing is spliced into the SQL.
  std::string ids = f.ids.empty() ? std::string() : bigint_array(f.ids);
  std::string state = f.state ? std::to_string(static_cast<int>(*f.state)) : std::string();
  std::string age = f.older_than ? std::to_string(f.older_than->count()) : std::string();
  std::string held = f.held ? (*f.held ? "true" : "false") : std::string();
  auto opt = [](const std::string& s, bool present) { return present ? s.c_str() : nullptr; };
  auto rows = tx.exec_params(
      std::string("SELECT m.id FROM messages m WHERE "
                  "($1::bigint[] IS NULL OR m.id = ANY($1::bigint[])) "
                  "AND ($2::smallint IS NULL OR m.state = $2) "
                  "AND ($3::bigint IS NULL OR m.created_at < now() - make_interval(secs => $3)) "
                  "AND ($4::text IS NULL OR m.envelope_from = $4) "
                  "AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND "
                  "lower(r.address) = lower($5)) "
                  "     OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.recipient = lower($5))) "
                  "AND ($6::inet IS NULL OR m.client_addr <<= $6::inet) "
                  "AND ($7::bool IS NULL OR m.held = $7) "
                  "AND (NOT $8 OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.status = "
                  "'pending' AND d.attempts > 0)) "
                  "ORDER BY m.id LIMIT $9") +
          (lock ? " FOR UPDATE" : ""),
      opt(ids, !f.ids.empty()), opt(state, f.state.has_value()), opt(age, f.older_than.has_value()),
      f.sender ? f.sender->c_str() : nullptr, f.recipient ? f.recipient->c_str() : nullptr,
      f.client ? f.client->c_str() : nullptr, opt(held, f.held.has_value()), f.deferred, f.limit);
  std::vector<std::int64_t> out;
  for (const auto& row : rows) out.push_back(row[0].as<std::int64_t>());
  return out;
}

}  // namespace wsmtp::common::pg
