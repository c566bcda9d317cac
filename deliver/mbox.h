// mbox delivery to Unix spools, as local delivery agents do it: fcntl lock and
// dot-file lock (both; readers use either), a "From " separator line, mboxrd
// quoting (">From " gains one more '>'), fsync; on any error the spool is cut back
// to its size before the attempt, so it never holds half a message.
// Does not know the database: the message arrives through a producer callback.
#pragma once

#include <chrono>
#include <ctime>
#include <functional>
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

// Appends one message to the spool at `path` (created 0600 if missing; the
// directory must exist). `produce` streams the message (LF line ends) into the
// sink it is given; quoting and the separator lines are added here. Throws
// std::system_error for I/O and lock timeouts, or whatever produce throws; the
// spool is then truncated back to its previous size.
void deliver_to_mbox(const std::string& path, std::string_view envelope_from, std::time_t when,
                     const std::function<void(const MboxSink&)>& produce, const MboxOptions& options);

}  // namespace wsmtp::deliver
