// The directory: local domains, mailboxes and aliases. Lookups for the listener
// (is this recipient known?) and the router (expand and route), and the
// administrative writes used by wsmtpctl. Addresses are lookup keys
// (Address::lookup_key(): lower-case).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "directory_types.h"
#include "new_message.h"

namespace wsmtp::common::pg {

// RCPT-time check: a recipient in a local domain is known if it is a mailbox,
// an alias or a mailing list, also in its plus-addressed form (user+tag@domain,
// with the domain's delimiter), or if the domain has a catch-all; a recipient
// in any other domain is remote (relaying is policy).
RecipientVerdict check_recipient(pqxx::transaction_base& tx, const std::string& address, const std::string& domain);

bool is_local_domain(pqxx::transaction_base& tx, const std::string& domain);

using MailboxRoute = MailboxTarget;
std::optional<MailboxRoute> find_mailbox(pqxx::transaction_base& tx, const std::string& address);
std::vector<std::string> alias_targets(pqxx::transaction_base& tx, const std::string& address);

// Administrative writes. Each returns false if the row already existed.
bool add_domain(pqxx::transaction_base& tx, const std::string& domain);
// destination: the Maildir, the mbox spool or the LMTP server (schema 016
// checks the form per transport); transport: maildir, mbox or lmtp.
bool add_mailbox(pqxx::transaction_base& tx, const std::string& address, const std::string& domain,
                 const std::string& destination, const std::string& transport = "maildir");
bool add_alias(pqxx::transaction_base& tx, const std::string& address, const std::string& domain,
               const std::string& target);

struct AliasRow {
  std::string address;
  std::string target;
};
std::vector<std::string> list_domains(pqxx::transaction_base& tx);
std::vector<MailboxTarget> list_mailboxes(pqxx::transaction_base& tx, const std::string& domain);
std::vector<AliasRow> list_aliases(pqxx::transaction_base& tx, const std::string& domain);

}  // namespace wsmtp::common::pg
