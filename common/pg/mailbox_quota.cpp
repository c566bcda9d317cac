#include "pg/mailbox_quota.h"

#include "pg/prepared.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {
namespace {

MailboxQuota quota_of(const pqxx::row& row, int first) {
  MailboxQuota q;
  if (!row[first].is_null()) q.bytes = row[first].as<std::int64_t>();
  if (!row[first + 1].is_null()) q.messages = row[first + 1].as<std::int64_t>();
  return q;
}

// nullptr (SQL NULL) for no limit; storage keeps the text alive for the call.
const char* limit_param(const std::optional<std::int64_t>& limit, std::string& storage) {
  if (!limit) return nullptr;
  storage = std::to_string(*limit);
  return storage.c_str();
}

}  // namespace

std::map<std::string, MailboxQuota> load_mailbox_quotas(pqxx::connection& conn,
                                                        const std::vector<std::string>& addresses) {
  std::map<std::string, MailboxQuota> out;
  if (addresses.empty()) return out;
  pqxx::nontransaction tx(conn);  // one read of settings: no snapshot needed
  auto rows =
      exec_prepared_sql(tx, "wsmtp_deliver_quotas",
                        "SELECT address, quota_bytes, quota_messages FROM mailboxes "
                        "WHERE address = ANY($1::text[]) AND (quota_bytes IS NOT NULL OR quota_messages IS NOT NULL)",
                        text_array(addresses));
  for (const auto& row : rows) out[row[0].as<std::string>()] = quota_of(row, 1);
  return out;
}

std::optional<MailboxQuota> mailbox_quota(pqxx::transaction_base& tx, const std::string& address) {
  auto rows = tx.exec_params("SELECT quota_bytes, quota_messages FROM mailboxes WHERE address = $1", address);
  if (rows.empty()) return std::nullopt;
  return quota_of(rows[0], 0);
}

bool set_mailbox_quota(pqxx::transaction_base& tx, const std::string& address, const MailboxQuota& quota) {
  std::string bytes, messages;
  auto r = tx.exec_params(
      "UPDATE mailboxes SET quota_bytes = $2::bigint, quota_messages = $3::integer, over_quota_seen = NULL "
      "WHERE address = $1",
      address, limit_param(quota.bytes, bytes), limit_param(quota.messages, messages));
  return r.affected_rows() == 1;
}

}  // namespace wsmtp::common::pg
