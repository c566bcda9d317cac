// Mailbox quotas as the deliverer and wsmtpctl see them (schema 008): the byte
// and message limits of a mailbox's Maildir. Only the limits live here; the
// usage is kept in the Maildir++ maildirsize file by wdeliver and Dovecot (deliver/quota.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

struct MailboxQuota {
  std::optional<std::int64_t> bytes;     // nullopt: no byte limit
  std::optional<std::int64_t> messages;  // nullopt: no message limit
  bool limited() const { return bytes || messages; }
};

// The quotas of those of `addresses` (mailbox lookup keys) that have one; a
// mailbox without a limit is absent. One indexed query for a whole batch.
std::map<std::string, MailboxQuota> load_mailbox_quotas(pqxx::connection& conn,
                                                        const std::vector<std::string>& addresses);

// The quota of one mailbox; nullopt if there is no such mailbox.
std::optional<MailboxQuota> mailbox_quota(pqxx::transaction_base& tx, const std::string& address);

// Sets both limits of a mailbox (nullopt clears one) and forgets that it was
// found full (019), so the listener takes its mail again at once. False: no such mailbox.
bool set_mailbox_quota(pqxx::transaction_base& tx, const std::string& address, const MailboxQuota& quota);

}  // namespace wsmtp::common::pg
