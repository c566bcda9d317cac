// mbox delivery to Unix spools, as local delivery agents do it: fcntl lock and
// dot-file lock (both; readers use either), a "From " separator line, mboxrd
// quoting (">From " gains one more '>'), fsync; on any error the spool is cut back
// to its size before the attempt, so it never holds half a message.
// Does not know the database: the message arrives through a producer callback.
#pragma once

#include <chrono>
#include <ctime>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace wsmtp::deliver {

// mboxrd quoting of a stream of LF-terminated lines, chunk by chunk: a line that
// matches ^>*From␣ gets one '>' prepended. finish() terminates an unterminated
// last line, so the blank separator line that follows is a line of its own.
class MboxrdQuoter {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  void flush_prefix(std::string& out);
  bool at_line_start_ = true;
  std::string prefix_;  // the start of the current line while it may still become ">*From "
  bool wrote_any_ = false;
  bool ended_with_lf_ = false;
};

// "From sender Sun Nov 22 02:18:23 2026\n"; <> becomes MAILER-DAEMON.
std::string mbox_from_line(std::string_view envelope_from, std::time_t when);

struct MboxOptions {
  std::chrono::milliseconds lock_timeout{30000};  // waiting for either lock; then a temporary failure
  std::chrono::seconds stale_lock_age{600};       // a dot-lock older than this was left by a crash
};

using MboxSink = std::function<void(std::string_view)>;

// Exactly-once appends across crashes. Each copy carries, as its first header
// line, "X-WSMTP-Delivery: <token> open", rewritten in place to "... done" once
// the whole copy is durable. Before appending, record_offset stores the
// spool's size (where the copy will start) somewhere that outlives us (the
// delivery row); a retry passes it back as previous_offset and finds there:
//  - its own copy marked done: already delivered, nothing is appended;
//  - its own copy marked open (the deliverer died while appending): if nothing
//    follows it, it is cut off and the copy written again; otherwise it stays
//    (it may be incomplete) and a complete copy is appended after the others;
//  - anything else (a reader rewrote the spool): the copy is appended.
struct MboxCopyId {
  std::string token;  // unique per delivery, no whitespace
  std::optional<std::int64_t> previous_offset;
  std::function<void(std::int64_t offset)> record_offset;  // throws to abort the append
};

enum class MboxOutcome {
  appended,
  already_present,         // an earlier attempt's complete copy is there: nothing appended
  replaced_partial,        // an earlier attempt's unfinished copy ended the spool: cut off, written again
  appended_after_partial,  // an unfinished copy is followed by other mail: it stays, a full copy is appended
};

// The marker line a copy starts with after its separator line.
std::string mbox_marker_line(std::string_view token, bool done);

// Appends one message to the spool at `path` (created 0600 if missing; the
// directory must exist; a new spool in a directory of the mail group, such as
// /var/mail, goes to the user it is named after, group mail, when the
// deliverer may give files away). `produce` streams the message (LF line ends) into the
// sink it is given; quoting and the separator lines are added here. With
// `copy`, the append is made exactly-once as described above. Throws
// std::system_error for I/O and lock timeouts, or whatever produce or
// record_offset throw; the spool is then truncated back to its previous size.
MboxOutcome deliver_to_mbox(const std::string& path, std::string_view envelope_from, std::time_t when,
                            const std::function<void(const MboxSink&)>& produce, const MboxOptions& options,
                            const MboxCopyId* copy = nullptr);

}  // namespace wsmtp::deliver
