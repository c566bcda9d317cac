#include "quota.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <iterator>
#include <system_error>

#include <fmt/format.h>

#include "handles.h"

namespace wsmtp::deliver {
namespace {

using DirPtr = std::unique_ptr<DIR, common::CFree<closedir>>;

// More directories than this in one worker's cache: start over rather than grow.
constexpr std::size_t kMaxCachedDirectories = 50000;
// Directory mtimes come from a coarse clock: two changes within one tick can
// leave the same mtime. A scan is trusted only if every directory it read had
// been still for longer than this before the scan started.
constexpr std::time_t kRacyMtimeSeconds = 2;

[[noreturn]] void fail(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

bool same_time(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

// Adds the messages of one directory (new/ or cur/) to usage. A missing
// directory counts as empty; a file a reader moved or deleted meanwhile is skipped.
bool add_directory(const std::string& path, MaildirUsage& usage, timespec& mtime) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    fail("stat " + path);
  }
  mtime = st.st_mtim;  // taken before reading: a change during the scan shows later
  DirPtr dir(::opendir(path.c_str()));
  if (!dir) {
    if (errno == ENOENT) return false;
    fail("opendir " + path);
  }
  const int fd = ::dirfd(dir.get());
  while (auto* entry = ::readdir(dir.get())) {
    if (entry->d_name[0] == '.') continue;  // ".", "..", and hidden files are not messages
    if (auto size = maildir_name_size(entry->d_name)) {
      usage.bytes += *size;
      ++usage.messages;
      continue;
    }
    struct stat file {};
    if (::fstatat(fd, entry->d_name, &file, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      fail(fmt::format("stat {}/{}", path, entry->d_name));
    }
    if (!S_ISREG(file.st_mode)) continue;
    usage.bytes += static_cast<std::uint64_t>(file.st_size);
    ++usage.messages;
  }
  return true;
}

// The Maildir++ folders of a Maildir (".Sent", ".Trash", ...): they share its quota.
std::vector<std::string> maildir_folders(const std::string& maildir) {
  std::vector<std::string> out;
  DirPtr dir(::opendir(maildir.c_str()));
  if (!dir) {
    if (errno == ENOENT) return out;
    fail("opendir " + maildir);
  }
  const int fd = ::dirfd(dir.get());
  while (auto* entry = ::readdir(dir.get())) {
    std::string_view name(entry->d_name);
    if (name.size() < 2 || name[0] != '.' || name == "..") continue;
    bool is_dir = entry->d_type == DT_DIR;
    if (entry->d_type == DT_UNKNOWN) {
      struct stat st {};
      is_dir = ::fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (is_dir) out.emplace_back(name);
  }
  return out;
}

}  // namespace

QuotaVerdict check_quota(const MaildirUsage& usage, std::uint64_t message_bytes,
                         const common::pg::MailboxQuota& quota) {
  if (quota.bytes && message_bytes > static_cast<std::uint64_t>(*quota.bytes)) return QuotaVerdict::too_big;
  if (quota.bytes && usage.bytes + message_bytes > static_cast<std::uint64_t>(*quota.bytes)) return QuotaVerdict::over;
  if (quota.messages && usage.messages + 1 > static_cast<std::uint64_t>(*quota.messages)) return QuotaVerdict::over;
  return QuotaVerdict::fits;
}

std::string human_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "K", "M", "G", "T"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return fmt::format("{}B", bytes);
  return fmt::format("{:.1f}{}", value, kUnits[unit]);
}

std::optional<std::uint64_t> maildir_name_size(std::string_view name) {
  auto colon = name.find(':');
  auto base = name.substr(0, colon);
  auto pos = base.find(",S=");
  if (pos == std::string_view::npos) return std::nullopt;
  auto digits = base.substr(pos + 3);
  std::uint64_t value = 0;
  std::size_t n = 0;
  for (; n < digits.size() && digits[n] >= '0' && digits[n] <= '9' && n < 19; ++n)
    value = value * 10 + static_cast<std::uint64_t>(digits[n] - '0');
  // The field ends the name or is followed by another ",X=" field.
  if (n == 0 || (n < digits.size() && digits[n] != ',')) return std::nullopt;
  return value;
}

// One directory's messages, from the cache while its mtime is the one the scan
// saw (and that mtime was old enough to trust), else scanned again.
MaildirUsage MaildirUsageCache::directory(const std::string& path, std::time_t now) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) fail("stat " + path);
    dirs_.erase(path);
    return {};  // not created yet: empty
  }
  if (auto it = dirs_.find(path); it != dirs_.end() && it->second.trusted && same_time(it->second.mtime, st.st_mtim))
    return it->second.usage;
  DirScan scan;
  if (!add_directory(path, scan.usage, scan.mtime)) {
    dirs_.erase(path);
    return {};
  }
  scan.trusted = scan.mtime.tv_sec + kRacyMtimeSeconds <= now;
  dirs_[path] = scan;
  return scan.usage;
}

// The Maildir++ folders, from the cache while the Maildir's own mtime is unchanged.
const std::vector<std::string>& MaildirUsageCache::folders(const std::string& maildir, const timespec& mtime,
                                                           std::time_t now) {
  auto& root = roots_[maildir];
  if (!root.trusted || !same_time(root.mtime, mtime)) {
    root.folders = maildir_folders(maildir);
    root.mtime = mtime;
    root.trusted = mtime.tv_sec + kRacyMtimeSeconds <= now;
  }
  return root.folders;
}

MaildirUsage MaildirUsageCache::usage(const std::string& maildir) {
  if (dirs_.size() + roots_.size() >= kMaxCachedDirectories) {
    dirs_.clear();
    roots_.clear();
  }
  const std::time_t now = std::time(nullptr);
  struct stat root {};
  if (::stat(maildir.c_str(), &root) != 0) {
    if (errno != ENOENT) fail("stat " + maildir);
    return {};  // no Maildir yet: empty
  }
  MaildirUsage total;
  auto add = [&total](const MaildirUsage& u) {
    total.bytes += u.bytes;
    total.messages += u.messages;
  };
  // Directories are cached one by one: a delivery changes new/ only, so the
  // messages a reader already moved to cur/ are not scanned again for it.
  for (const char* sub : {"/new", "/cur"}) add(directory(maildir + sub, now));
  for (const auto& folder : folders(maildir, root.st_mtim, now))
    for (const char* sub : {"/new", "/cur"}) add(directory(maildir + "/" + folder + sub, now));
  return total;
}

void PassQuotas::load(pqxx::connection& conn, const std::vector<std::string>& recipients) {
  limits_ = common::pg::load_mailbox_quotas(conn, recipients);
  measured_.clear();
  staged_.clear();
}

const common::pg::MailboxQuota* PassQuotas::limits(const std::string& recipient) const {
  auto it = limits_.find(recipient);
  return it == limits_.end() ? nullptr : &it->second;
}

MaildirUsage PassQuotas::usage(const std::string& maildir) {
  // Measured once per pass: the pass's own copies reach new/ only at its end
  // (they are counted in staged_), and what other processes do meanwhile is
  // seen by the next pass.
  auto measured = measured_.find(maildir);
  if (measured == measured_.end()) measured = measured_.emplace(maildir, cache_.usage(maildir)).first;
  auto usage = measured->second;
  if (auto it = staged_.find(maildir); it != staged_.end()) {
    usage.bytes += it->second.bytes;
    usage.messages += it->second.messages;
  }
  return usage;
}

QuotaVerdict PassQuotas::admit(const std::string& recipient, const std::string& maildir, std::uint64_t bytes) {
  const auto* quota = limits(recipient);
  if (!quota) return QuotaVerdict::fits;
  auto verdict = check_quota(usage(maildir), bytes, *quota);
  if (verdict == QuotaVerdict::fits) {
    auto& staged = staged_[maildir];
    staged.bytes += bytes;
    ++staged.messages;
  }
  return verdict;
}

}  // namespace wsmtp::deliver
