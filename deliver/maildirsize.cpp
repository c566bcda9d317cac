#include "maildirsize.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <system_error>

#include <fmt/format.h>

#include "ascii.h"
#include "unique_fd.h"
#include "write_all.h"

namespace wsmtp::deliver {
namespace {

constexpr const char* kFileName = "/maildirsize";
constexpr const char* kBaseName = "maildirsize";

[[noreturn]] void fail(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), what);
}

bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }

// One change line: two integers, either may be negative, separated by blanks;
// Courier pads both to 12 columns, so blanks around them are fine too.
std::optional<std::pair<std::int64_t, std::int64_t>> parse_change_line(std::string_view line) {
  line = common::trim_blanks(line);
  std::int64_t bytes = 0;
  std::int64_t messages = 0;
  const char* end = line.data() + line.size();
  auto first = std::from_chars(line.data(), end, bytes);
  if (first.ec != std::errc() || first.ptr == end || !is_blank(*first.ptr)) return std::nullopt;
  const char* next = first.ptr;
  while (next != end && is_blank(*next)) ++next;
  auto second = std::from_chars(next, end, messages);
  if (second.ec != std::errc() || second.ptr != end) return std::nullopt;
  return std::make_pair(bytes, messages);
}

std::string host_for_file_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) return "localhost";
  std::string out(host);
  // '/' would leave the directory, ':' starts Maildir info.
  for (auto& ch : out)
    if (ch == '/' || ch == ':') ch = '_';
  return out;
}

// A maildirsize we could not update would undercount from now on: removing
// it makes the next reader (us or Dovecot) recalculate it from the Maildir.
[[noreturn]] void drop_and_fail(int root, int error, const std::string& what) {
  ::unlinkat(root, kBaseName, 0);
  fail(error, what + " (removed, to be recalculated)");
}

// A directory of the Maildir, relative to `at`, never through a symlink: the
// mailbox owner may plant one to make us write elsewhere. Empty with errno
// set if it cannot be opened.
common::UniqueFd open_dir(int at, const std::string& name) {
  return common::UniqueFd(::openat(at, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

}  // namespace

std::string maildirsize_quota_line(const MaildirsizeLimits& limits) {
  std::string line;
  if (limits.bytes != 0 || limits.messages == 0) line = fmt::format("{}S", limits.bytes);
  if (limits.messages != 0) line += fmt::format("{}{}C", line.empty() ? "" : ",", limits.messages);
  return line;
}

std::optional<MaildirsizeLimits> parse_maildirsize_quota(std::string_view line) {
  MaildirsizeLimits limits;
  while (true) {
    auto comma = line.find(',');
    auto item = line.substr(0, comma);
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    const auto digits = static_cast<std::size_t>(ptr - item.data());
    if (ec != std::errc() || digits + 1 != item.size()) return std::nullopt;  // digits, then one letter
    if (*ptr == 'S')
      limits.bytes = value;
    else if (*ptr == 'C')
      limits.messages = value;
    else
      return std::nullopt;
    if (comma == std::string_view::npos) return limits;
    line.remove_prefix(comma + 1);
  }
}

std::optional<MaildirsizeContents> parse_maildirsize(std::string_view text) {
  auto last_newline = text.rfind('\n');
  if (last_newline == std::string_view::npos) return std::nullopt;
  text = text.substr(0, last_newline + 1);  // a last line still being appended is not counted yet
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  MaildirsizeContents contents;
  auto end_of_quota = text.find('\n');
  contents.limits = parse_maildirsize_quota(text.substr(0, end_of_quota));
  text.remove_prefix(end_of_quota + 1);
  std::int64_t bytes = 0;
  std::int64_t messages = 0;
  while (!text.empty()) {
    auto end = text.find('\n');
    auto change = parse_change_line(text.substr(0, end));
    if (!change) return std::nullopt;
    if (__builtin_add_overflow(bytes, change->first, &bytes) ||
        __builtin_add_overflow(messages, change->second, &messages))
      return std::nullopt;
    ++contents.change_lines;
    text.remove_prefix(end + 1);
  }
  // Below zero: lines were lost or doubled somewhere; only a recount helps.
  if (bytes < 0 || messages < 0) return std::nullopt;
  contents.totals = {static_cast<std::uint64_t>(bytes), static_cast<std::uint64_t>(messages)};
  return contents;
}

std::optional<MaildirsizeFile> read_maildirsize(const std::string& maildir) {
  const std::string path = maildir + kFileName;
  auto root = open_dir(AT_FDCWD, maildir);
  if (!root) {
    if (errno == ENOENT) return std::nullopt;
    fail(errno, "open " + maildir);
  }
  // O_NONBLOCK: a FIFO planted under the name must not hang the deliverer.
  common::UniqueFd fd(::openat(root.get(), kBaseName, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    // A symlink, or a file we may not read (another program rewrote it under
    // its own account): broken, so the recalculation replaces it (the rename
    // needs only the directory). Throwing would defer every delivery to the
    // mailbox until its mail expired.
    if (errno == ELOOP || errno == EACCES) return MaildirsizeFile{};
    fail(errno, "open " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(errno, "fstat " + path);
  MaildirsizeFile file;
  file.mtime = st.st_mtim.tv_sec;
  if (!S_ISREG(st.st_mode)) return file;
  file.text.resize(kMaildirsizeMaxBytes);
  std::size_t size = 0;
  while (size < file.text.size()) {
    ssize_t n = ::read(fd.get(), file.text.data() + size, file.text.size() - size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(errno, "read " + path);
    }
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  file.too_large = size >= kMaildirsizeMaxBytes;
  file.text.resize(size);
  return file;
}

MaildirsizeJudgement judge_maildirsize(const std::optional<MaildirsizeFile>& file, const MaildirsizeLimits& limits,
                                       std::time_t now) {
  if (!file) return {std::nullopt, false, "missing"};
  if (file->too_large) return {std::nullopt, false, "5120 bytes or more"};
  auto contents = parse_maildirsize(file->text);
  if (!contents) return {std::nullopt, false, "broken"};
  if (!contents->limits || *contents->limits != limits) return {std::nullopt, false, "quota changed"};
  if (contents->change_lines == 0) return {std::nullopt, false, "no totals"};
  const bool verified = contents->change_lines == 1 && now < file->mtime + kMaildirsizeStaleSeconds;
  return {contents->totals, verified, ""};
}

void write_maildirsize(const std::string& maildir, const MaildirsizeLimits& limits, const MaildirUsage& totals,
                       std::time_t now) {
  auto root = open_dir(AT_FDCWD, maildir);
  if (!root) fail(errno, "open " + maildir);
  struct stat dir {};
  if (::fstat(root.get(), &dir) != 0) fail(errno, "stat " + maildir);
  auto tmp_dir = open_dir(root.get(), "tmp");
  if (!tmp_dir) fail(errno, "open " + maildir + "/tmp");
  const std::string name = fmt::format("{}.P{}_maildirsize.{}", now, ::getpid(), host_for_file_name());
  const std::string tmp = maildir + "/tmp/" + name;
  // O_EXCL: the name is predictable and tmp/ is the mailbox owner's to write;
  // a file or hard link planted there is removed, never written through.
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  common::UniqueFd fd(::openat(tmp_dir.get(), name.c_str(), kFlags, 0600));
  if (!fd && errno == EEXIST && ::unlinkat(tmp_dir.get(), name.c_str(), 0) == 0)
    fd = common::UniqueFd(::openat(tmp_dir.get(), name.c_str(), kFlags, 0600));
  if (!fd) fail(errno, "open " + tmp);
  try {
    // The mode is set explicitly: open()'s is filtered by the umask.
    if (::fchmod(fd.get(), dir.st_mode & 0666) != 0) fail(errno, "fchmod " + tmp);
    // The Maildir's owner (Dovecot reads and rewrites the file as that user):
    // root, or a deliverer given CAP_CHOWN for maildir_owner, can give it away.
    // Without that right the file stays ours with the directory's mode, which
    // is what the messages get too.
    if ((dir.st_uid != ::geteuid() || dir.st_gid != ::getegid()) && ::fchown(fd.get(), dir.st_uid, dir.st_gid) != 0 &&
        errno != EPERM)
      fail(errno, "fchown " + tmp);
    write_all(fd.get(), fmt::format("{}\n{} {}\n", maildirsize_quota_line(limits), totals.bytes, totals.messages), tmp);
    // No fsync: a file a crash truncates reads as broken or missing, and is
    // simply recalculated (the spec's answer to every inconsistency).
    fd.close();
    if (::renameat(tmp_dir.get(), name.c_str(), root.get(), kBaseName) != 0) fail(errno, "rename " + tmp);
  } catch (...) {
    ::unlinkat(tmp_dir.get(), name.c_str(), 0);
    throw;
  }
}

bool append_maildirsize(const std::string& maildir, std::int64_t bytes, std::int64_t messages) {
  const std::string path = maildir + kFileName;
  auto root = open_dir(AT_FDCWD, maildir);
  if (!root) fail(errno, "open " + maildir);
  // O_NONBLOCK: a FIFO planted under the name must not hang the deliverer.
  common::UniqueFd fd(::openat(root.get(), kBaseName, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return false;
    drop_and_fail(root.get(), errno, "open " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) drop_and_fail(root.get(), errno, "fstat " + path);
  if (!S_ISREG(st.st_mode)) drop_and_fail(root.get(), EINVAL, path + " is not a regular file");
  const auto line = fmt::format("{} {}\n", bytes, messages);
  ssize_t n = 0;
  do n = ::write(fd.get(), line.data(), line.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) drop_and_fail(root.get(), errno, "append to " + path);
  if (static_cast<std::size_t>(n) != line.size()) drop_and_fail(root.get(), EIO, "short append to " + path);
  try {
    fd.close();  // NFS reports a failed write here
  } catch (const std::system_error& e) {
    drop_and_fail(root.get(), e.code().value(), "close " + path);
  }
  return true;
}

}  // namespace wsmtp::deliver
