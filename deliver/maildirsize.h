// The Maildir++ quota file, <Maildir>/maildirsize, as Courier's
// README.maildirquota defines it and Dovecot's maildir quota backend, Courier
// and maildrop keep it: a quota line ("<bytes>S,<count>C"), then one
// "<bytes> <count>" line per change (deliveries add, deletions subtract). This
// file knows the format and the file operations (read, judge, rewrite
// atomically, append one line); when to use them is PassQuotas' business
// (quota.h), and the directory scan behind a recalculation is MaildirUsageCache's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace wsmtp::deliver {

struct MaildirUsage {
  std::uint64_t bytes = 0;
  std::uint64_t messages = 0;
};

// Limits as the quota line states them; 0 means no limit (Maildir++ and Dovecot).
struct MaildirsizeLimits {
  std::uint64_t bytes = 0;
  std::uint64_t messages = 0;
  bool operator==(const MaildirsizeLimits&) const = default;
};

// Readers recalculate a file this large or larger (the spec's 5120-byte buffer:
// filling it means "recalculate"); it bounds what a stream of appends can cost.
constexpr std::size_t kMaildirsizeMaxBytes = 5120;
// An over-quota reading older than this is recalculated before it refuses mail.
constexpr std::time_t kMaildirsizeStaleSeconds = 15 * 60;

// "4096S", "10C", "4096S,10C"; "0S" when there is no limit at all (as Dovecot
// writes it, so that the line is never empty).
std::string maildirsize_quota_line(const MaildirsizeLimits& limits);

// Parses a quota line: comma-separated "<digits>S" / "<digits>C" items. nullopt
// if anything else is in it (such a file is rewritten with our line).
std::optional<MaildirsizeLimits> parse_maildirsize_quota(std::string_view line);

// The contents of a maildirsize file, summed.
struct MaildirsizeContents {
  std::optional<MaildirsizeLimits> limits;  // nullopt: the quota line is malformed
  MaildirUsage totals;
  std::size_t change_lines = 0;  // lines after the quota line
};

// Parses the text of a maildirsize file. A last line without its newline is
// ignored (an append in progress, as Dovecot does). nullopt if the file is
// broken: no quota line, a NUL byte, a change line that is not two integers
// (Courier's space padding is fine), a sum that overflows or is negative.
std::optional<MaildirsizeContents> parse_maildirsize(std::string_view text);

// What was read from a maildirsize file.
struct MaildirsizeFile {
  std::string text;        // at most kMaildirsizeMaxBytes
  bool too_large = false;  // the file holds kMaildirsizeMaxBytes or more
  std::time_t mtime = 0;
};

// Reads <maildir>/maildirsize; nullopt if it does not exist. Something that is
// not a regular file (or a symlink) reads as an empty, hence broken, file;
// a FIFO never blocks the read. Throws std::system_error if it cannot be read
// (also for a symlinked Maildir, which is never followed).
std::optional<MaildirsizeFile> read_maildirsize(const std::string& maildir);

// The verdict on a maildirsize file for a mailbox with `limits` at time `now`.
struct MaildirsizeJudgement {
  std::optional<MaildirUsage> usage;  // nullopt: recalculate (see `why`)
  // A single change line younger than kMaildirsizeStaleSeconds: trusted even
  // to refuse mail. Anything else is recalculated before it refuses a message
  // (Courier's rule; Dovecot's is the same for a mailbox already over quota).
  bool verified = false;
  const char* why = "";  // why a recalculation is needed
};

// The Maildir++ rules: recalculate when the file is missing, too large, broken,
// has no change line, or states other limits than the configured ones.
MaildirsizeJudgement judge_maildirsize(const std::optional<MaildirsizeFile>& file, const MaildirsizeLimits& limits,
                                       std::time_t now);

// Replaces <maildir>/maildirsize with the quota line and one totals line,
// written into <maildir>/tmp and renamed over the old file, so a reader sees
// the old file or the new one, never a part. The file gets the Maildir's
// owner (when we run as root) and its permissions without execute bits, as
// Dovecot derives them. Everything is opened relative to the Maildir's
// directory and tmp/, neither followed if a symlink, and the rename replaces
// whatever link was planted at the name. Throws std::system_error (nothing is
// left in tmp/).
void write_maildirsize(const std::string& maildir, const MaildirsizeLimits& limits, const MaildirUsage& totals,
                       std::time_t now);

// Appends "<bytes> <messages>\n" to an existing <maildir>/maildirsize with
// O_APPEND in one write(), which is what concurrent Maildir++ writers rely on.
// False (nothing written) if there is no maildirsize: it is never created
// here, and the next reader recalculates it. A failed or short write removes
// the file, so no reader sums a torn line, then throws std::system_error; so
// does a symlink, FIFO or anything else that is not a regular file (never
// written through, never waited on).
bool append_maildirsize(const std::string& maildir, std::int64_t bytes, std::int64_t messages);

}  // namespace wsmtp::deliver
