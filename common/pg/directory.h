// The directory: local domains, mailboxes and aliases. Lookups for the listener
// (is this recipient known?) and the router (expand and route), and the
// administrative writes used by wsmtpctl. Addresses are lookup keys
// (Address::lookup_key(): lower-case).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "store.h"

namespace wsmtp::common::pg {

// RCPT-time check: a recipient in a local domain is known if it is a mailbox or
// an alias; a recipient in any other domain is remote (relaying is policy).
RecipientVerdict check_recipient(pqxx::transaction_base& tx, const std::string& address, const std::string& domain);

bool is_local_domain(pqxx::transaction_base& tx, const std::string& domain);

struct MailboxRoute {
  std::string address;
  std::string maildir;
  std::string transport;
};
std::optional<MailboxRoute> find_mailbox(pqxx::transaction_base& tx, const std::string& address);
std::vector<std::string> alias_targets(pqxx::transaction_base& tx, const std::string& address);

// Administrative writes. Each returns false if the row already existed.
bool add_domain(pqxx::transaction_base& tx, const std::string& domain);
bool add_mailbox(pqxx::transaction_base& tx, const std::string& address, const std::string& domain,
                 const std::string& maildir);
bool add_alias(pqxx::transaction_base& tx, const std::string& address, const std::string& domain,
               const std::string& target);

}  // namespace wsmtp::common::pg
