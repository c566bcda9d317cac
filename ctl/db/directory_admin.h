// Administrative removal and inspection of the directory for wsmtpctl (adds and
// lookups are in directory.h). Each returns how many rows it removed.
#pragma once

#include <optional>
#include <string>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// Removes a domain with its mailboxes and aliases (ON DELETE CASCADE).
int remove_domain(pqxx::transaction_base& tx, const std::string& domain);
int remove_mailbox(pqxx::transaction_base& tx, const std::string& address);
// Removes one target of an alias, or every target when target is empty.
int remove_alias(pqxx::transaction_base& tx, const std::string& address, const std::string& target);

struct DomainCounts {
  bool exists = false;
  std::int64_t mailboxes = 0;
  std::int64_t aliases = 0;
};
DomainCounts domain_counts(pqxx::transaction_base& tx, const std::string& domain);

// When wdeliver last found the mailbox over its quota (mailboxes.over_quota_seen,
// schema 019), as text in UTC; nullopt when it is not marked.
std::optional<std::string> mailbox_full_since(pqxx::transaction_base& tx, const std::string& address);

}  // namespace wsmtp::common::pg
