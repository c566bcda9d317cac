// Per-mailbox quotas for Maildir delivery. The limits come from the database
// (mailboxes.quota_bytes / quota_messages); the usage is kept where Dovecot's
// maildir quota backend, Courier and maildrop keep it, in the Maildir++
// maildirsize file (maildirsize.h): a pass reads it once per limited Maildir,
// appends "<size> 1" for each copy it keeps, and recalculates it from a scan
// of new/ and cur/ of the Maildir and its folders when the Maildir++ rules
// say so. The scan is cached per directory while the directory is unchanged
// (its mtime), so a recalculation rereads only what changed. Sizes come from
// Maildir++ ",S=" names where present, else from stat(). Mailboxes without
// limits are never measured, and their maildirsize is left alone. The quota is
// soft across deliverers, as Maildir++ intends (no locks): two workers
// delivering to one mailbox at the same moment may both fit under the limit
// and overshoot it by one message each.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

#include "maildirsize.h"
#include "pg/mailbox_quota.h"

namespace wsmtp::deliver {

enum class QuotaVerdict {
  fits,
  over,     // the mailbox has no room for this message now (it may later)
  too_big,  // the message alone exceeds the byte limit: it can never fit
};

// The limits as a maildirsize quota line states them.
MaildirsizeLimits maildirsize_limits(const common::pg::MailboxQuota& quota);

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
// recipients (one query), their Maildirs' usage (read from maildirsize once
// per pass), plus what this pass already staged for them (staged copies reach
// new/ only at the pass's sync; their maildirsize lines are written at once).
class PassQuotas {
 public:
  using Clock = std::function<std::time_t()>;
  // clock: the time maildirsize files are aged against; empty: the wall clock.
  explicit PassQuotas(MaildirUsageCache& cache, Clock clock = {});

  // Reads the limits of `recipients` (mailbox keys). Throws pqxx errors.
  void load(pqxx::connection& conn, const std::vector<std::string>& recipients);
  // Takes limits that are already at hand (mailbox key -> limits), as load() would.
  void use_limits(std::map<std::string, common::pg::MailboxQuota> limits);

  // The recipient's limits; nullptr if it has none.
  const common::pg::MailboxQuota* limits(const std::string& recipient) const;

  // The Maildir's usage with this pass's staged copies, as the last admit()
  // for it measured it (after a recalculation if admit made one); a Maildir
  // not admitted to in this pass is scanned. Throws std::system_error.
  MaildirUsage usage(const std::string& maildir);

  // Checks a copy of `bytes` staged for recipient's Maildir against the
  // recipient's limits. When it fits, counts it as staged and appends
  // "<bytes> 1" to maildirsize. Refusing on totals maildirsize cannot vouch
  // for (several change lines, or older than 15 minutes) recalculates first.
  // A recipient without limits always fits, and nothing is read or written.
  // Throws std::system_error if the Maildir cannot be measured.
  QuotaVerdict admit(const std::string& recipient, const std::string& maildir, std::uint64_t bytes);

 private:
  struct Measured {
    MaildirUsage usage;     // without this pass's staged copies
    bool verified = false;  // trusted to refuse mail (MaildirsizeJudgement::verified)
  };
  Measured& measure(const std::string& maildir, const MaildirsizeLimits& limits);
  MaildirUsage recalculate(const std::string& maildir, const MaildirsizeLimits& limits, const char* why);
  MaildirUsage staged(const std::string& maildir) const;
  std::time_t now() const;

  MaildirUsageCache& cache_;
  Clock clock_;
  std::map<std::string, common::pg::MailboxQuota> limits_;
  std::map<std::string, Measured> measured_;  // per Maildir, at its first check in this pass
  std::map<std::string, MaildirUsage> staged_;
};

}  // namespace wsmtp::deliver
