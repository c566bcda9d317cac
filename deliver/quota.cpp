#include "quota.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <iterator>
#include <system_error>

#include <fmt/format.h>

#include "handles.h"
#include "log.h"

namespace wsmtp::deliver {
namespace {

using DirPtr = std::unique_ptr<DIR, common::CFree<closedir>>;

// More directories than this in one worker's cache: start over rather than grow.
constexpr std::size_t kMaxCachedDirectories = 50000;
// Directory mtimes come from a coarse clock: two changes within one tick can
// leave the same mtime. A scan is trusted only if every directory it read had
// been still for longer than this before the scan started.
constexpr std::time_t kRacyMtimeSeconds = 2;
// A recalculation the Maildir keeps changing under is tried this often, then
// maildirsize is removed instead (the spec's two answers to the race).
constexpr int kRecalculationAttempts = 3;

[[noreturn]] void fail(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

bool same_time(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

MaildirUsage plus(const MaildirUsage& a, const MaildirUsage& b) { return {a.bytes + b.bytes, a.messages + b.messages}; }

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

struct DirectoryStamp {
  std::string path;
  timespec mtime{};  // zero: missing
};

// The mtimes of every new/ and cur/ a recalculation counts, to tell whether
// the Maildir changed while it was being counted (the spec's race check).
std::vector<DirectoryStamp> directory_stamps(const std::string& maildir) {
  std::vector<DirectoryStamp> out;
  auto folders = maildir_folders(maildir);
  std::sort(folders.begin(), folders.end());
  folders.insert(folders.begin(), "");
  for (const auto& folder : folders)
    for (const char* sub : {"/new", "/cur"}) {
      DirectoryStamp stamp{maildir + (folder.empty() ? "" : "/" + folder) + sub};
      struct stat st {};
      if (::stat(stamp.path.c_str(), &st) == 0)
        stamp.mtime = st.st_mtim;
      else if (errno != ENOENT)
        fail("stat " + stamp.path);
      out.push_back(std::move(stamp));
    }
  return out;
}

bool same_stamps(const std::vector<DirectoryStamp>& a, const std::vector<DirectoryStamp>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const DirectoryStamp& x, const DirectoryStamp& y) {
    return x.path == y.path && same_time(x.mtime, y.mtime);
  });
}

}  // namespace

MaildirsizeLimits maildirsize_limits(const common::pg::MailboxQuota& quota) {
  return {.bytes = quota.bytes ? static_cast<std::uint64_t>(*quota.bytes) : 0,
          .messages = quota.messages ? static_cast<std::uint64_t>(*quota.messages) : 0};
}

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

PassQuotas::PassQuotas(MaildirUsageCache& cache, Clock clock) : cache_(cache), clock_(std::move(clock)) {}

std::time_t PassQuotas::now() const { return clock_ ? clock_() : std::time(nullptr); }

void PassQuotas::load(pqxx::connection& conn, const std::vector<std::string>& recipients) {
  use_limits(common::pg::load_mailbox_quotas(conn, recipients));
}

void PassQuotas::use_limits(std::map<std::string, common::pg::MailboxQuota> limits) {
  limits_ = std::move(limits);
  measured_.clear();
  staged_.clear();
}

const common::pg::MailboxQuota* PassQuotas::limits(const std::string& recipient) const {
  auto it = limits_.find(recipient);
  return it == limits_.end() ? nullptr : &it->second;
}

MaildirUsage PassQuotas::staged(const std::string& maildir) const {
  auto it = staged_.find(maildir);
  return it == staged_.end() ? MaildirUsage{} : it->second;
}

MaildirUsage PassQuotas::usage(const std::string& maildir) {
  auto measured = measured_.find(maildir);
  return plus(measured != measured_.end() ? measured->second.usage : cache_.usage(maildir), staged(maildir));
}

// Measured once per pass: the pass's own copies are counted in staged_, and
// what other processes do meanwhile is seen by the next pass.
PassQuotas::Measured& PassQuotas::measure(const std::string& maildir, const MaildirsizeLimits& limits) {
  if (auto it = measured_.find(maildir); it != measured_.end()) return it->second;
  auto judged = judge_maildirsize(read_maildirsize(maildir), limits, now());
  Measured measured;
  if (judged.usage)
    measured = {*judged.usage, judged.verified};
  else
    measured = {recalculate(maildir, limits, judged.why), true};
  return measured_[maildir] = measured;
}

// Counts the Maildir and replaces maildirsize with the result. Returns the
// count (without the pass's staged copies), even if the file could not be
// written: the numbers are right, only the bookkeeping failed, and the next
// pass tries again.
MaildirUsage PassQuotas::recalculate(const std::string& maildir, const MaildirsizeLimits& limits, const char* why) {
  // The staged copies' lines are in the file being replaced, but the copies
  // reach new/ only at the pass's sync: the new file counts them too.
  const auto pending = staged(maildir);
  MaildirUsage counted;
  for (int attempt = 0; attempt < kRecalculationAttempts; ++attempt) {
    auto before = directory_stamps(maildir);
    counted = cache_.usage(maildir);
    try {
      write_maildirsize(maildir, limits, plus(counted, pending), now());
    } catch (const std::system_error& e) {
      log::warn("maildir {}: maildirsize ({}) not rewritten: {}", maildir, why, e.what());
      return counted;
    }
    if (same_stamps(before, directory_stamps(maildir))) {
      log::info("maildir {}: maildirsize recalculated ({}): {} in {} messages", maildir, why,
                human_bytes(counted.bytes), counted.messages);
      return counted;
    }
  }
  // Mail kept arriving or leaving during every count: rather than leave totals
  // that may be off, let the next reader count again.
  if (::unlink((maildir + "/maildirsize").c_str()) != 0 && errno != ENOENT)
    log::warn("maildir {}: removing maildirsize failed: {}", maildir, std::strerror(errno));
  log::info("maildir {}: changing during every recount; maildirsize removed", maildir);
  return counted;
}

QuotaVerdict PassQuotas::admit(const std::string& recipient, const std::string& maildir, std::uint64_t bytes) {
  const auto* quota = limits(recipient);
  if (!quota) return QuotaVerdict::fits;
  const auto wanted = maildirsize_limits(*quota);
  auto& measured = measure(maildir, wanted);
  auto verdict = check_quota(plus(measured.usage, staged(maildir)), bytes, *quota);
  if (verdict == QuotaVerdict::over && !measured.verified) {
    // Appended totals drift (a reader that deleted without updating the file,
    // a copy counted whose sync failed): before refusing mail on them, count.
    measured = {recalculate(maildir, wanted, "full on unverified totals"), true};
    verdict = check_quota(plus(measured.usage, staged(maildir)), bytes, *quota);
  }
  if (verdict != QuotaVerdict::fits) return verdict;
  auto& pending = staged_[maildir];
  pending.bytes += bytes;
  ++pending.messages;
  // Written when the copy is staged rather than after the pass's sync: a copy
  // whose sync then fails stays counted (too much, never too little) until
  // the next recalculation.
  try {
    append_maildirsize(maildir, static_cast<std::int64_t>(bytes), 1);
  } catch (const std::system_error& e) {
    log::warn("maildir {}: {}", maildir, e.what());
  }
  return verdict;
}

}  // namespace wsmtp::deliver
