#include "db/directory_admin.h"

namespace wsmtp::common::pg {

int remove_domain(pqxx::transaction_base& tx, const std::string& domain) {
  return static_cast<int>(tx.exec_params("DELETE FROM domains WHERE name = $1", domain).affected_rows());
}

int remove_mailbox(pqxx::transaction_base& tx, const std::string& address) {
  return static_cast<int>(tx.exec_params("DELETE FROM mailboxes WHERE address = $1", address).affected_rows());
}

int remove_alias(pqxx::transaction_base& tx, const std::string& address, const std::string& target) {
  return static_cast<int>(
      tx.exec_params("DELETE FROM aliases WHERE address = $1 AND ($2 = '' OR target = $2)", address, target)
          .affected_rows());
}

DomainCounts domain_counts(pqxx::transaction_base& tx, const std::string& domain) {
  auto r = tx.exec_params1(
      "SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1), "
      "(SELECT count(*) FROM mailboxes WHERE domain = $1), (SELECT count(*) FROM aliases WHERE domain = $1)",
      domain);
  return {r[0].as<bool>(), r[1].as<std::int64_t>(), r[2].as<std::int64_t>()};
}

std::optional<std::string> mailbox_full_since(pqxx::transaction_base& tx, const std::string& address) {
  auto r = tx.exec_params(
      "SELECT to_char(over_quota_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM mailboxes "
      "WHERE address = $1 AND over_quota_seen IS NOT NULL",
      address);
  if (r.empty()) return std::nullopt;
  return r[0][0].as<std::string>();
}

}  // namespace wsmtp::common::pg
