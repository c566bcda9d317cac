#include "mbox.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "unique_fd.h"

namespace wsmtp::deliver {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::string_view kFrom = "From ";
constexpr auto kLockPoll = std::chrono::milliseconds(20);

[[noreturn]] void fail(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

// True while `prefix` can still grow into ">*From ".
bool could_be_from(std::string_view prefix) {
  std::size_t i = 0;
  while (i < prefix.size() && prefix[i] == '>') ++i;
  auto rest = prefix.substr(i);
  return rest.size() <= kFrom.size() && kFrom.substr(0, rest.size()) == rest;
}

bool is_from(std::string_view prefix) {
  std::size_t i = 0;
  while (i < prefix.size() && prefix[i] == '>') ++i;
  return prefix.substr(i) == kFrom;
}

void write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(errno, "write " + path);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// POSIX record lock on the whole file, polled so a reader that holds it forever
// costs us a temporary failure, not a stuck worker.
void fcntl_lock(int fd, const std::string& path, const MboxOptions& options) {
  auto deadline = Clock::now() + options.lock_timeout;
  for (;;) {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (::fcntl(fd, F_SETLK, &fl) == 0) return;
    if (errno != EAGAIN && errno != EACCES && errno != EINTR) fail(errno, "fcntl lock " + path);
    if (Clock::now() >= deadline) fail(EAGAIN, "timed out waiting for the fcntl lock on " + path);
    std::this_thread::sleep_for(kLockPoll);
  }
}

// The dot-lock "<spool>.lock", created with O_EXCL. Removed by the destructor.
class DotLock {
 public:
  DotLock(std::string path, const MboxOptions& options) : path_(std::move(path)) {
    auto deadline = Clock::now() + options.lock_timeout;
    for (;;) {
      common::UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (fd) {
        auto pid = std::to_string(::getpid()) + "\n";
        write_all(fd.get(), pid, path_);
        return;
      }
      if (errno != EEXIST) fail(errno, "create " + path_);
      remove_if_stale(options.stale_lock_age);
      if (Clock::now() >= deadline) fail(EAGAIN, "timed out waiting for the dot-lock " + path_);
      std::this_thread::sleep_for(kLockPoll);
    }
  }
  ~DotLock() { ::unlink(path_.c_str()); }
  DotLock(const DotLock&) = delete;
  DotLock& operator=(const DotLock&) = delete;

 private:
  // A lock file this old was left by a holder that died (locks are held for
  // seconds); removing it is what procmail and Postfix's dotlock do too.
  void remove_if_stale(std::chrono::seconds max_age) {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return;
    if (std::time(nullptr) - st.st_mtime > max_age.count()) ::unlink(path_.c_str());
  }
  std::string path_;
};

// Everything after the locks: remember the size, append, fsync, or cut back.
void append_locked(int fd, const std::string& path, std::string_view envelope_from, std::time_t when,
                   const std::function<void(const MboxSink&)>& produce) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(errno, "fstat " + path);
  const off_t before = st.st_size;
  try {
    std::string buffer = mbox_from_line(envelope_from, when);
    MboxrdQuoter quoter;
    produce([&](std::string_view bytes) {
      quoter.feed(bytes, buffer);
      if (buffer.size() >= 64 * 1024) {
        write_all(fd, buffer, path);
        buffer.clear();
      }
    });
    quoter.finish(buffer);
    buffer += '\n';  // the empty line that separates messages
    write_all(fd, buffer, path);
    if (::fsync(fd) != 0) fail(errno, "fsync " + path);
  } catch (...) {
    // Never leave half a message: back to the size before this attempt.
    if (::ftruncate(fd, before) == 0) ::fsync(fd);
    throw;
  }
}

}  // namespace

void MboxrdQuoter::flush_prefix(std::string& out) {
  out += prefix_;
  prefix_.clear();
}

void MboxrdQuoter::feed(std::string_view in, std::string& out) {
  if (!in.empty()) {
    wrote_any_ = true;
    ended_with_lf_ = in.back() == '\n';
  }
  for (char ch : in) {
    if (!at_line_start_) {
      out += ch;
      if (ch == '\n') at_line_start_ = true;
      continue;
    }
    if (ch == '\n') {
      flush_prefix(out);
      out += ch;
      continue;
    }
    prefix_ += ch;
    if (is_from(prefix_)) {
      out += '>';
      flush_prefix(out);
      at_line_start_ = false;
    } else if (!could_be_from(prefix_)) {
      flush_prefix(out);
      at_line_start_ = false;
    }
  }
}

void MboxrdQuoter::finish(std::string& out) {
  flush_prefix(out);
  if (wrote_any_ && !ended_with_lf_) out += '\n';
  at_line_start_ = true;
}

std::string mbox_from_line(std::string_view envelope_from, std::time_t when) {
  std::tm tm{};
  ::gmtime_r(&when, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
  std::string sender;
  // The separator is one line of space-separated fields: an address with
  // whitespace in its quoted local part must not split it.
  for (char ch : envelope_from) sender += (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') ? '_' : ch;
  if (sender.empty()) sender = "MAILER-DAEMON";
  return fmt::format("From {} {}\n", sender, date);
}

void deliver_to_mbox(const std::string& path, std::string_view envelope_from, std::time_t when,
                     const std::function<void(const MboxSink&)>& produce, const MboxOptions& options) {
  // O_APPEND: every write lands at the end even if a non-locking writer appended
  // meanwhile; O_NOFOLLOW: a symlinked spool is an attack, not a mailbox.
  common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) fail(errno, "open " + path);
  // Lock order as Python's mailbox and most MUAs: fcntl first, then the dot-lock.
  fcntl_lock(fd.get(), path, options);
  DotLock dot(path + ".lock", options);
  append_locked(fd.get(), path, envelope_from, when, produce);
  // Closing the descriptor releases the fcntl lock; DotLock's destructor the other.
  fd.close();
}

}  // namespace wsmtp::deliver
