#include "pg/directory.h"

namespace wsmtp::common::pg {

RecipientVerdict check_recipient(pqxx::transaction_base& tx, const std::string& address, const std::string& domain) {
  // One round trip: is the domain ours, and does the address (or its base form
  // without the +tag) name a mailbox, alias or list, or has the domain a catch-all?
  // And is that mailbox one the deliverer recently found over its quota?
  // Prepared once per connection: the listener asks this for every RCPT, and
  // planning the statement cost more than running it.
  static const std::string kSql =
      "WITH d AS (SELECT recipient_delimiter AS delim FROM domains WHERE name = $2), "
      "k AS (SELECT $1::text AS key "
      "      UNION ALL "
      "      SELECT left($1, strpos($1, d.delim) - 1) || substring($1 from '@[^@]*$') FROM d "
      "      WHERE d.delim <> '' AND strpos(substring($1 from '^(.*)@'), d.delim) > 1) "
      "SELECT EXISTS (SELECT 1 FROM d), "
      "       EXISTS (SELECT 1 FROM k WHERE EXISTS (SELECT 1 FROM mailboxes WHERE address = k.key) "
      "                                  OR EXISTS (SELECT 1 FROM aliases WHERE address = k.key) "
      "                                  OR EXISTS (SELECT 1 FROM lists WHERE address = k.key)) "
      "       OR EXISTS (SELECT 1 FROM catchalls WHERE domain = $2), "
      // 019: a mark older than an hour no longer refuses (see the migration).
      "       EXISTS (SELECT 1 FROM k JOIN mailboxes m ON m.address = k.key "
      "               WHERE m.over_quota_seen > now() - interval '1 hour')";
  tx.conn().prepare("wsmtp_check_recipient", kSql);
  auto row = tx.exec_prepared1("wsmtp_check_recipient", address, domain);
  if (!row[0].as<bool>()) return RecipientVerdict::remote;
  if (!row[1].as<bool>()) return RecipientVerdict::unknown_local;
  return row[2].as<bool>() ? RecipientVerdict::full_local : RecipientVerdict::known_local;
}

bool is_local_domain(pqxx::transaction_base& tx, const std::string& domain) {
  return tx.exec_params1("SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)", domain)[0].as<bool>();
}

std::optional<MailboxRoute> find_mailbox(pqxx::transaction_base& tx, const std::string& address) {
  auto rows = tx.exec_params("SELECT address, maildir, transport FROM mailboxes WHERE address = $1", address);
  if (rows.empty()) return std::nullopt;
  return MailboxRoute{rows[0][0].as<std::string>(), rows[0][1].as<std::string>(), rows[0][2].as<std::string>()};
}

std::vector<std::string> alias_targets(pqxx::transaction_base& tx, const std::string& address) {
  std::vector<std::string> out;
  for (const auto& row : tx.exec_params("SELECT target FROM aliases WHERE address = $1 ORDER BY target", address))
    out.push_back(row[0].as<std::string>());
  return out;
}

bool add_domain(pqxx::transaction_base& tx, const std::string& domain) {
  return tx.exec_params("INSERT INTO domains (name) VALUES ($1) ON CONFLICT DO NOTHING", domain).affected_rows() == 1;
}

bool add_mailbox(pqxx::transaction_base& tx, const std::string& address, const std::string& domain,
                 const std::string& destination, const std::string& transport) {
  return tx.exec_params(
               "INSERT INTO mailboxes (address, domain, maildir, transport) VALUES ($1, $2, $3, $4) "
               "ON CONFLICT DO NOTHING",
               address, domain, destination, transport)
             .affected_rows() == 1;
}

bool add_alias(pqxx::transaction_base& tx, const std::string& address, const std::string& domain,
               const std::string& target) {
  return tx.exec_params("INSERT INTO aliases (address, domain, target) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        address, domain, target)
             .affected_rows() == 1;
}

std::vector<std::string> list_domains(pqxx::transaction_base& tx) {
  std::vector<std::string> out;
  for (const auto& row : tx.exec("SELECT name FROM domains ORDER BY name")) out.push_back(row[0].as<std::string>());
  return out;
}

// domain "" lists all domains.
std::vector<MailboxTarget> list_mailboxes(pqxx::transaction_base& tx, const std::string& domain) {
  std::vector<MailboxTarget> out;
  for (const auto& row : tx.exec_params("SELECT address, maildir, transport FROM mailboxes "
                                        "WHERE $1 = '' OR domain = $1 ORDER BY address",
                                        domain))
    out.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>()});
  return out;
}

std::vector<AliasRow> list_aliases(pqxx::transaction_base& tx, const std::string& domain) {
  std::vector<AliasRow> out;
  for (const auto& row : tx.exec_params("SELECT address, target FROM aliases WHERE $1 = '' OR domain = $1 "
                                        "ORDER BY address, target",
                                        domain))
    out.push_back({row[0].as<std::string>(), row[1].as<std::string>()});
  return out;
}

}  // namespace wsmtp::common::pg
