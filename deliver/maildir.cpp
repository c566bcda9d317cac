#include "maildir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "handles.h"
#include "unique_fd.h"
#include "write_all.h"

namespace wsmtp::deliver {
namespace {

using DirPtr = std::unique_ptr<DIR, common::CFree<closedir>>;

[[noreturn]] void fail(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

// O_NOFOLLOW: the mailbox owner may replace any part of the Maildir with a
// symlink to make us write elsewhere; such a Maildir is refused, not followed.
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

// Opens `name` (relative to at, or a path with AT_FDCWD) as a directory,
// refusing a symlink. An empty UniqueFd with errno set if it does not exist.
common::UniqueFd open_dir_at(int at, const std::string& name, const std::string& maildir) {
  common::UniqueFd fd(::openat(at, name.c_str(), kDirFlags));
  if (fd || errno == ENOENT) return fd;
  const int error = errno;
  struct stat st {};
  if (::fstatat(at, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
    throw MaildirRefused(fmt::format("Maildir {}: {} is a symbolic link; not delivering through it", maildir,
                                     at == AT_FDCWD ? "the Maildir" : name + "/"));
  if (error == ENOTDIR)
    throw MaildirRefused(
        fmt::format("Maildir {}: {} is not a directory", maildir, at == AT_FDCWD ? "the Maildir" : name + "/"));
  errno = error;
  fail("open " + (at == AT_FDCWD ? name : maildir + "/" + name));
}

// Creates `name` relative to `at` if missing; a directory we create gets the
// configured owner and mode, set through its descriptor (mkdir's mode is
// filtered by the umask, and a path could be swapped for a symlink).
void make_dir_at(int at, const std::string& name, const MaildirOwner& owner, const std::string& maildir) {
  if (::mkdirat(at, name.c_str(), owner.dir_mode) != 0) {
    if (errno != EEXIST) fail("mkdir " + name);
    return;
  }
  auto fd = open_dir_at(at, name, maildir);
  if (!fd) fail("open " + name);
  if (::fchmod(fd.get(), owner.dir_mode) != 0) fail("chmod " + name);
  if ((owner.uid != static_cast<uid_t>(-1) || owner.gid != static_cast<gid_t>(-1)) &&
      ::fchown(fd.get(), owner.uid, owner.gid) != 0)
    fail("chown " + name);
}

void ensure_maildir(const std::string& maildir, const MaildirOwner& owner) {
  // Parents first: a new mailbox's directory may not exist yet. They are the
  // administrator's (a symlinked /home is fine); only the Maildir is checked.
  for (std::size_t pos = 1; (pos = maildir.find('/', pos)) != std::string::npos; ++pos)
    make_dir_at(AT_FDCWD, maildir.substr(0, pos), owner, maildir);
  make_dir_at(AT_FDCWD, maildir, owner, maildir);
  auto root = open_dir_at(AT_FDCWD, maildir, maildir);
  if (!root) fail("open " + maildir);
  for (const char* sub : {"tmp", "new", "cur"}) make_dir_at(root.get(), sub, owner, maildir);
}

}  // namespace

// One Maildir as this batch opened it: the root without following a symlink,
// its subdirectories relative to it, each on first use.
struct MaildirBatch::Dirs {
  std::string path;
  common::UniqueFd root;
  common::UniqueFd tmp;
  common::UniqueFd fresh;  // new/
  int sub(common::UniqueFd& slot, const char* name) {
    if (!slot) {
      slot = open_dir_at(root.get(), name, path);
      if (!slot) fail("open " + path + "/" + name);
    }
    return slot.get();
  }

  // True if new/<name> or cur/<name>:<flags> exists (a reader may have moved it).
  bool contains(const std::string& name) {
    struct stat st {};
    // A missing new/ holds nothing; sync() then reports it for the copy.
    if (!fresh) fresh = open_dir_at(root.get(), "new", path);
    if (fresh && ::fstatat(fresh.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return true;
    auto cur = open_dir_at(root.get(), "cur", path);
    if (!cur) return false;
    DirPtr dir(::fdopendir(cur.get()));
    if (!dir) fail("opendir " + path + "/cur");
    cur.release();  // the DIR owns it now
    const std::string prefix = name + ":";
    while (auto* entry = ::readdir(dir.get())) {
      std::string_view n(entry->d_name);
      if (n == name || n.substr(0, prefix.size()) == prefix) return true;
    }
    return false;
  }
};

std::string maildir_unique_name(std::int64_t received_epoch, std::int64_t msg_id, std::int64_t delivery_id,
                                std::string_view host) {
  std::string safe;
  for (char ch : host) {
    if (ch == '/')
      safe += "\\057";
    else if (ch == ':')
      safe += "\\072";
    else
      safe += ch;
  }
  return fmt::format("{}.W{}_{}.{}", received_epoch, msg_id, delivery_id, safe);
}

void KnownMaildirs::add(const std::string& maildir) {
  if (known_.size() >= kMaxEntries) known_.clear();
  known_.insert(maildir);
}

std::size_t MaildirBatch::size() const { return staged_.size(); }

MaildirBatch::Dirs& MaildirBatch::ensure(const std::string& maildir) {
  if (auto it = dirs_.find(maildir); it != dirs_.end()) return *it->second;
  auto dirs = std::make_shared<Dirs>();
  dirs->path = maildir;
  if (!known_ || !known_->contains(maildir)) ensure_maildir(maildir, owner_);
  dirs->root = open_dir_at(AT_FDCWD, maildir, maildir);
  if (!dirs->root) {
    // Known, but removed since (an admin deleting a mailbox): made again.
    if (known_) known_->forget(maildir);
    ensure_maildir(maildir, owner_);
    dirs->root = open_dir_at(AT_FDCWD, maildir, maildir);
    if (!dirs->root) fail("open " + maildir);
  }
  if (known_) known_->add(maildir);
  return *(dirs_[maildir] = std::move(dirs));
}

// "<time>.<pid>_<random>.<unique name>" (the Maildir convention's
// time.pid_random.host, the host being the end of the unique name): 64 random
// bits, so nobody can plant anything at the name before we create it.
std::string MaildirBatch::tmp_name(const std::string& unique_name) {
  const std::uint64_t random = (static_cast<std::uint64_t>(random_()) << 32) ^ random_();
  return fmt::format("{}.{}_{:016x}.{}", std::time(nullptr), ::getpid(), random, unique_name);
}

MaildirBatch::~MaildirBatch() {
  // Staged but never synced (an exception in the caller): nothing reached new/.
  for (auto& s : staged_)
    if (s.fd) ::unlinkat(s.dirs->tmp.get(), s.tmp_name.c_str(), 0);
}

MaildirOutcome MaildirBatch::stage(const std::string& maildir, const std::string& unique_name,
                                   const std::function<void(const ByteSink&)>& produce) {
  if (contains(maildir, unique_name)) return MaildirOutcome::already_present;
  write(maildir, unique_name, produce);
  return MaildirOutcome::written;
}

bool MaildirBatch::contains(const std::string& maildir, const std::string& unique_name) {
  return ensure(maildir).contains(unique_name);
}

void MaildirBatch::write(const std::string& maildir, const std::string& unique_name,
                         const std::function<void(const ByteSink&)>& produce) {
  Staged s;
  s.name = unique_name;
  // O_EXCL|O_NOFOLLOW: never through anything planted at the name;
  // O_NONBLOCK: not even a FIFO could make the open wait.
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  auto open_tmp = [&] {
    auto* dirs = &ensure(maildir);
    s.dirs = dirs_.at(maildir);
    s.tmp_name = tmp_name(unique_name);
    if (!dirs->tmp) dirs->tmp = open_dir_at(dirs->root.get(), "tmp", maildir);
    if (!dirs->tmp) return common::UniqueFd();  // errno ENOENT
    return common::UniqueFd(::openat(dirs->tmp.get(), s.tmp_name.c_str(), kFlags, owner_.file_mode));
  };
  s.fd = open_tmp();
  if (!s.fd && errno == ENOENT) {
    // Known, but removed since (an admin deleting a mailbox): made again.
    dirs_.erase(maildir);
    if (known_) known_->forget(maildir);
    s.fd = open_tmp();
  }
  if (!s.fd && errno == EEXIST) s.fd = open_tmp();  // 64 random bits met before: a second draw
  const std::string tmp_path = maildir + "/tmp/" + s.tmp_name;
  if (!s.fd) fail("open " + tmp_path);
  try {
    if (::fchmod(s.fd.get(), owner_.file_mode) != 0) fail("fchmod " + tmp_path);
    if ((owner_.uid != static_cast<uid_t>(-1) || owner_.gid != static_cast<gid_t>(-1)) &&
        ::fchown(s.fd.get(), owner_.uid, owner_.gid) != 0)
      fail("fchown " + tmp_path);
    std::string buffer;
    produce([&](std::string_view bytes) {
      buffer += bytes;
      s.size += bytes.size();
      if (buffer.size() >= 64 * 1024) {
        write_all(s.fd.get(), buffer, tmp_path);
        buffer.clear();
      }
    });
    write_all(s.fd.get(), buffer, tmp_path);
  } catch (...) {
    ::unlinkat(s.dirs->tmp.get(), s.tmp_name.c_str(), 0);
    throw;
  }
  staged_.push_back(std::move(s));
}

std::uint64_t MaildirBatch::last_size() const { return staged_.empty() ? 0 : staged_.back().size; }

void MaildirBatch::discard_last() {
  if (staged_.empty()) return;
  ::unlinkat(staged_.back().dirs->tmp.get(), staged_.back().tmp_name.c_str(), 0);
  staged_.pop_back();
}

namespace {

// Runs job(i) for i in [0, n) on up to kSyncThreads threads: fsync is mostly
// waiting for the device, and overlapping the waits is what a mail server with
// many delivery processes gets for free.
constexpr std::size_t kSyncThreads = 8;

void parallel_for(std::size_t n, const std::function<void(std::size_t)>& job) {
  std::atomic<std::size_t> next{0};
  auto run = [&] {
    for (std::size_t i; (i = next++) < n;) job(i);
  };
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < std::min(n, kSyncThreads); ++t) threads.emplace_back(run);
  run();
  for (auto& t : threads) t.join();
}

}  // namespace

std::vector<std::string> MaildirBatch::sync() {
  // new/ of each Maildir opened here, before the threads: a missing or
  // symlinked new/ fails its copies, which stay in tmp/ no longer.
  std::vector<Dirs*> dirs;  // the Maildirs whose new/ receives a rename
  std::vector<std::string> dir_errors;
  for (auto& s : staged_) {
    if (std::find(dirs.begin(), dirs.end(), s.dirs.get()) != dirs.end()) continue;
    dirs.push_back(s.dirs.get());
    dir_errors.emplace_back();
    try {
      s.dirs->sub(s.dirs->fresh, "new");
    } catch (const std::exception& e) {
      dir_errors.back() = e.what();
    }
  }
  auto dir_index = [&](const Staged& s) {
    return static_cast<std::size_t>(std::find(dirs.begin(), dirs.end(), s.dirs.get()) - dirs.begin());
  };
  parallel_for(staged_.size(), [&](std::size_t i) {
    auto& s = staged_[i];
    const std::string tmp_path = s.dirs->path + "/tmp/" + s.tmp_name;
    try {
      if (const auto& error = dir_errors[dir_index(s)]; !error.empty()) throw std::runtime_error(error);
      if (::fsync(s.fd.get()) != 0) fail("fsync " + tmp_path);
      s.fd.close();
      // rename(2) replaces whatever is at new/<name> (a planted symlink
      // included) and never follows it.
      if (::renameat(s.dirs->tmp.get(), s.tmp_name.c_str(), s.dirs->fresh.get(), s.name.c_str()) != 0)
        fail("rename " + tmp_path);
    } catch (const std::exception& e) {
      s.error = e.what();
      s.fd.reset();
      ::unlinkat(s.dirs->tmp.get(), s.tmp_name.c_str(), 0);
    }
  });
  parallel_for(dirs.size(), [&](std::size_t i) {
    if (!dir_errors[i].empty()) return;
    if (::fsync(dirs[i]->fresh.get()) != 0)
      dir_errors[i] = std::system_error(errno, std::generic_category(), "fsync " + dirs[i]->path + "/new").what();
  });
  std::vector<std::string> out;
  for (auto& s : staged_) {
    if (s.error.empty()) s.error = dir_errors[dir_index(s)];
    // A Maildir that failed is checked (and made again if need be) next time.
    if (!s.error.empty() && known_) known_->forget(s.dirs->path);
    out.push_back(std::move(s.error));
  }
  staged_.clear();
  return out;
}

MaildirOutcome deliver_to_maildir(const std::string& maildir, const std::string& unique_name,
                                  const std::function<void(const ByteSink&)>& produce, MaildirOwner owner) {
  MaildirBatch batch(owner);
  auto outcome = batch.stage(maildir, unique_name, produce);
  if (outcome == MaildirOutcome::already_present) return outcome;
  auto errors = batch.sync();
  if (!errors.front().empty()) throw std::runtime_error(errors.front());
  return outcome;
}

}  // namespace wsmtp::deliver
