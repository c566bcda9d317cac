// Per-mailbox quotas for Maildir delivery. The limits come from the database
// (mailboxes.quota_bytes / quota_messages); the usage is measured from the
// Maildir itself — the sizes of the files in new/ and cur/ of the Maildir and
// of its Maildir++ folders — so mail a POP3 reader deleted stops counting at
// once, whatever the reader is. Each directory's scan is cached while the
// directory is unchanged (its mtime), so a delivery makes only new/ be read
// again, and an idle full mailbox is not rescanned for every retry. Sizes come
// from Maildir++ ",S=" names where present, else from stat(). The quota is
// soft across deliverers: two workers delivering to one mailbox at the same
// moment may both fit under the limit and overshoot it by one message each, as
// with Maildir++ quotas.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

#include "pg/deliver_quota.h"

namespace wsmtp::deliver {

struct MaildirUsage {
  std::uint64_t bytes = 0;
  std::uint64_t messages = 0;
};

enum class QuotaVerdict {
  fits,
  over,     // the mailbox has no room for this message now (it may later)
  too_big,  // the message alone exceeds the byte limit: it can never fit
};

// Whether a message of message_bytes fits into a mailbox holding `usage` under
// `quota`. A limit is reached when usage plus the message would exceed it.
QuotaVerdict check_quota(const MaildirUsage& usage, std::uint64_t message_bytes, const common::pg::MailboxQuota& quota);

// "2.5M"-style rendering for error texts (binary units).
std::string human_bytes(std::uint64_t bytes);

// The file size a Maildir++ name announces (",S=<bytes>" before the ':' info),
// which spares a stat(); nullopt if the name has none.
std::optional<std::uint64_t> maildir_name_size(std::string_view name);

// Measures Maildirs and remembers each directory's scan until the directory
// changes (its mtime). Throws std::system_error if a Maildir cannot be read.
class MaildirUsageCache {
 public:
  MaildirUsage usage(const std::string& maildir);

 private:
  struct DirScan {
    timespec mtime{};
    MaildirUsage usage;
    bool trusted = false;  // false: the mtime was too recent to prove a later change would show
  };
  struct RootScan {
    timespec mtime{};
    std::vector<std::string> folders;
    bool trusted = false;
  };
  MaildirUsage directory(const std::string& path, std::time_t now);
  const std::vector<std::string>& folders(const std::string& maildir, const timespec& mtime, std::time_t now);
  std::map<std::string, DirScan> dirs_;
  std::map<std::string, RootScan> roots_;
};

// The quotas of one delivery pass: the limits of the pass's Maildir
// recipients (one query), their Maildirs' usage, plus what this pass already
// staged for them (staged copies reach new/ only at the pass's sync).
class PassQuotas {
 public:
  explicit PassQuotas(MaildirUsageCache& cache) : cache_(cache) {}

  // Reads the limits of `recipients` (mailbox keys). Throws pqxx errors.
  void load(pqxx::connection& conn, const std::vector<std::string>& recipients);

  // The recipient's limits; nullptr if it has none.
  const common::pg::MailboxQuota* limits(const std::string& recipient) const;

  // The Maildir's usage with this pass's staged copies. Throws std::system_error.
  MaildirUsage usage(const std::string& maildir);

  // Checks a message of `bytes` for recipient's Maildir; when it fits, counts
  // it as staged.
  QuotaVerdict admit(const std::string& recipient, const std::string& maildir, std::uint64_t bytes);

 private:
  MaildirUsageCache& cache_;
  std::map<std::string, common::pg::MailboxQuota> limits_;
  std::map<std::string, MaildirUsage> measured_;  // per Maildir, at its first check in this pass
  std::map<std::string, MaildirUsage> staged_;
};

}  // namespace wsmtp::deliver
