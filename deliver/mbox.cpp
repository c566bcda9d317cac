#include "mbox.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "fs_identity.h"
#include "log.h"
#include "unique_fd.h"
#include "write_all.h"

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

std::string read_at(int fd, off_t offset, std::size_t length, const std::string& path) {
  std::string out(length, '\0');
  std::size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, out.data() + got, length - got, offset + static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(errno, "read " + path);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return out;
}

enum class Found { nothing, done, open };

// Whether the spool holds, at offset, a copy with our marker (and in which state).
Found copy_at(int fd, off_t offset, std::string_view token, const std::string& path) {
  auto head = read_at(fd, offset, 1024 + token.size(), path);
  auto nl = head.find('\n');
  if (head.rfind(kFrom, 0) != 0 || nl == std::string::npos) return Found::nothing;
  auto second = std::string_view(head).substr(nl + 1);
  if (second.rfind(mbox_marker_line(token, true), 0) == 0) return Found::done;
  if (second.rfind(mbox_marker_line(token, false), 0) == 0) return Found::open;
  return Found::nothing;
}

// True if another message (a "From " line: mboxrd quoting leaves none inside
// a copy) starts after the copy that starts at offset.
bool followed_by_another(int fd, off_t offset, off_t size, const std::string& path) {
  constexpr std::size_t kBlock = 64 * 1024;
  std::string carry;  // the end of the previous block: a match may span two
  for (off_t at = offset + 1; at < size; at += static_cast<off_t>(kBlock)) {
    auto block = carry + read_at(fd, at, kBlock, path);
    if (block.find("\nFrom ") != std::string::npos) return true;
    carry = block.substr(block.size() > kFrom.size() ? block.size() - kFrom.size() : 0);
  }
  return false;
}

// Marks the copy whose marker line starts at marker as complete: "open" becomes
// "done" in place. O_APPEND is lifted for the write (pwrite on an O_APPEND
// descriptor appends on Linux) and restored after.
void mark_done(int fd, off_t marker, std::string_view token, const std::string& path) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_APPEND) != 0) fail(errno, "fcntl " + path);
  auto line = mbox_marker_line(token, true);
  ssize_t n = ::pwrite(fd, line.data(), line.size(), marker);
  int err = errno;
  ::fcntl(fd, F_SETFL, flags);
  if (n != static_cast<ssize_t>(line.size())) fail(n < 0 ? err : EIO, "write " + path);
  if (::fsync(fd) != 0) fail(errno, "fsync " + path);
}

// An earlier attempt's copy at copy.previous_offset: done (nothing to do), or
// open and the last thing in the spool (cut it off: `before` moves back), or
// open and followed by other mail.
MboxOutcome check_earlier_copy(int fd, const std::string& path, const MboxCopyId& copy, off_t& before) {
  if (!copy.previous_offset || *copy.previous_offset < 0 || *copy.previous_offset >= before)
    return MboxOutcome::appended;
  const auto offset = static_cast<off_t>(*copy.previous_offset);
  auto found = copy_at(fd, offset, copy.token, path);
  if (found == Found::done) return MboxOutcome::already_present;
  if (found == Found::nothing) return MboxOutcome::appended;
  if (followed_by_another(fd, offset, before, path)) return MboxOutcome::appended_after_partial;
  if (::ftruncate(fd, offset) != 0) fail(errno, "truncate " + path);
  before = offset;
  return MboxOutcome::replaced_partial;
}

// Everything after the locks: remember the size, append, fsync, or cut back.
MboxOutcome append_locked(int fd, const std::string& path, std::string_view envelope_from, std::time_t when,
                          const std::function<void(const MboxSink&)>& produce, const MboxCopyId* copy) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(errno, "fstat " + path);
  off_t before = st.st_size;
  auto outcome = copy ? check_earlier_copy(fd, path, *copy, before) : MboxOutcome::appended;
  if (outcome == MboxOutcome::already_present) return outcome;
  // Stored before the first byte: a retry after a crash from here on looks here.
  if (copy) copy->record_offset(static_cast<std::int64_t>(before));
  try {
    std::string buffer = mbox_from_line(envelope_from, when);
    const off_t marker = before + static_cast<off_t>(buffer.size());
    if (copy) buffer += mbox_marker_line(copy->token, false);
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
    if (copy) mark_done(fd, marker, copy->token, path);
  } catch (...) {
    // Never leave half a message: back to the size before this attempt.
    if (::ftruncate(fd, before) == 0) ::fsync(fd);
    throw;
  }
  return outcome;
}

// Opens the spool for appending, creating it if missing. O_APPEND: every write
// lands at the end even if a non-locking writer appended meanwhile;
// O_NOFOLLOW: a symlinked spool is an attack, not a mailbox; O_NONBLOCK and
// then a regular file only: a FIFO or device planted at the name must neither
// hang the worker nor take the mail; O_RDWR: a retry reads back what an
// earlier attempt wrote.
common::UniqueFd open_spool(const std::string& path) {
  constexpr int kFlags = O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  for (;;) {
    common::UniqueFd fd(::open(path.c_str(), kFlags | O_CREAT | O_EXCL, 0600));
    if (fd) return fd;
    if (errno != EEXIST) fail(errno, "open " + path);
    fd = common::UniqueFd(::open(path.c_str(), kFlags));
    if (fd) {
      struct stat st {};
      if (::fstat(fd.get(), &st) != 0) fail(errno, "fstat " + path);
      if (!S_ISREG(st.st_mode)) fail(EINVAL, "mbox spool " + path + " is not a regular file");
      return fd;
    }
    if (errno != ENOENT) fail(errno, "open " + path);
    // Removed between the two opens (a reader emptied and unlinked it): again.
  }
}

// The account a spool in the system mail directory belongs to: the user it is
// named after (/var/mail/<user>). Only a directory of the mail group counts
// (Debian's /var/mail is root:mail 2775): elsewhere a name like "list" says
// nothing about who reads the file. nullopt: leave the owner alone.
struct SpoolOwner {
  uid_t uid;
  gid_t gid;
};
std::optional<SpoolOwner> spool_owner(const std::string& path) {
  const group* mail = ::getgrnam("mail");
  struct stat dir {};
  const auto parent = std::filesystem::path(path).parent_path().string();
  if (!mail || ::stat(parent.empty() ? "." : parent.c_str(), &dir) != 0 || dir.st_gid != mail->gr_gid)
    return std::nullopt;
  const auto name = std::filesystem::path(path).filename().string();
  passwd pw{};
  passwd* found = nullptr;
  std::string buffer(16384, '\0');
  // getpwnam_r tells "no such user" (found == nullptr, 0) from a failed lookup
  // (an NSS or LDAP error): that one must defer the delivery, not leave a
  // spool to the deliverer for good.
  if (int err = ::getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found); err != 0)
    fail(err, "look up the owner of " + path);
  if (!found) return std::nullopt;
  return SpoolOwner{pw.pw_uid, mail->gr_gid};
}

// Whose file-system ids write the spool. A spool of the mail directory is
// written as the user it is named after (created as theirs, group mail), as
// Postfix's local does: then the user's MUA may rewrite it, and the deliverer
// can still append next time. A spool the deliverer made before it could do
// that stays its own while it holds mail; still empty, it goes to its user.
// nullopt: write as the deliverer (no owner, or no right to act as one).
std::optional<FsIdentity> spool_writer(const std::string& path) {
  auto owner = spool_owner(path);
  // Root's spool is written as the deliverer: never act as root.
  if (!owner || owner->uid == 0 || owner->uid == ::geteuid()) return std::nullopt;
  // Asked first (and given back at once): a spool given away to a user the
  // deliverer cannot then act as would lock the deliverer out of it.
  if (!FsIdentity::assume(owner->uid, owner->gid)) {
    log::warn(
        "mbox spool {} is written as the deliverer, not as uid {}: grant wdeliver CAP_SETUID and CAP_SETGID "
        "(deploy/systemd/wdeliver.service)",
        path, owner->uid);
    return std::nullopt;
  }
  common::UniqueFd ours(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st {};
  if (ours && ::fstat(ours.get(), &st) == 0 && st.st_uid == ::geteuid()) {
    if (st.st_size != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    if (::fchown(ours.get(), owner->uid, owner->gid) != 0) {
      log::warn("mbox spool {} stays the deliverer's: no right to give it to uid {}", path, owner->uid);
      return std::nullopt;
    }
  }
  return FsIdentity::assume(owner->uid, owner->gid);
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

std::string mbox_marker_line(std::string_view token, bool done) {
  return fmt::format("X-WSMTP-Delivery: {} {}\n", token, done ? "done" : "open");
}

MboxOutcome deliver_to_mbox(const std::string& path, std::string_view envelope_from, std::time_t when,
                            const std::function<void(const MboxSink&)>& produce, const MboxOptions& options,
                            const MboxCopyId* copy) {
  // Destroyed last: the spool, its locks and its dot-lock are all handled as its owner.
  const auto writer = spool_writer(path);
  auto fd = open_spool(path);
  // Lock order as Python's mailbox and most MUAs: fcntl first, then the dot-lock.
  fcntl_lock(fd.get(), path, options);
  DotLock dot(path + ".lock", options);
  auto outcome = append_locked(fd.get(), path, envelope_from, when, produce, copy);
  // Closing the descriptor releases the fcntl lock; DotLock's destructor the other.
  fd.close();
  return outcome;
}

}  // namespace wsmtp::deliver
