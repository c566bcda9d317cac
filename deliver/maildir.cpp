#include "maildir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <stdexcept>
#include <thread>
#include <system_error>

#include <fmt/format.h>

#include "unique_fd.h"
#include "write_all.h"

namespace wsmtp::deliver {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

// Creates path if missing; a directory we create gets the configured owner and
// mode (set explicitly: mkdir's mode is filtered by the umask).
void make_dir(const std::string& path, const MaildirOwner& owner) {
  if (::mkdir(path.c_str(), owner.dir_mode) != 0) {
    if (errno != EEXIST) fail("mkdir " + path);
    return;
  }
  if (::chmod(path.c_str(), owner.dir_mode) != 0) fail("chmod " + path);
  if ((owner.uid != static_cast<uid_t>(-1) || owner.gid != static_cast<gid_t>(-1)) &&
      ::chown(path.c_str(), owner.uid, owner.gid) != 0)
    fail("chown " + path);
}

void ensure_maildir(const std::string& maildir, const MaildirOwner& owner) {
  // Parents first: a new mailbox's directory may not exist yet.
  for (std::size_t pos = 1; (pos = maildir.find('/', pos)) != std::string::npos; ++pos)
    make_dir(maildir.substr(0, pos), owner);
  make_dir(maildir, owner);
  for (const char* sub : {"/tmp", "/new", "/cur"}) make_dir(maildir + sub, owner);
}

void fsync_dir(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) fail("open " + path);
  if (::fsync(fd.get()) != 0) fail("fsync " + path);
}

// True if new/<name> or cur/<name>:<flags> exists (a reader may have moved it).
bool already_delivered(const std::string& maildir, const std::string& name) {
  struct stat st {};
  if (::stat((maildir + "/new/" + name).c_str(), &st) == 0) return true;
  DIR* dir = ::opendir((maildir + "/cur").c_str());
  if (!dir) return false;
  bool found = false;
  const std::string prefix = name + ":";
  while (auto* entry = ::readdir(dir)) {
    std::string_view n(entry->d_name);
    if (n == name || n.substr(0, prefix.size()) == prefix) {
      found = true;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

}  // namespace

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

void MaildirBatch::ensure(const std::string& maildir) {
  if (known_ && known_->contains(maildir)) return;
  ensure_maildir(maildir, owner_);
  if (known_) known_->add(maildir);
}

MaildirBatch::~MaildirBatch() {
  // Staged but never synced (an exception in the caller): nothing reached new/.
  for (auto& s : staged_)
    if (s.fd) ::unlink(s.tmp.c_str());
}

MaildirOutcome MaildirBatch::stage(const std::string& maildir, const std::string& unique_name,
                                   const std::function<void(const ByteSink&)>& produce) {
  if (contains(maildir, unique_name)) return MaildirOutcome::already_present;
  write(maildir, unique_name, produce);
  return MaildirOutcome::written;
}

bool MaildirBatch::contains(const std::string& maildir, const std::string& unique_name) {
  ensure(maildir);
  return already_delivered(maildir, unique_name);
}

void MaildirBatch::write(const std::string& maildir, const std::string& unique_name,
                         const std::function<void(const ByteSink&)>& produce) {
  Staged s;
  s.maildir = maildir;
  s.tmp = maildir + "/tmp/" + unique_name;
  s.dst = maildir + "/new/" + unique_name;
  // O_TRUNC: a tmp file left by a crashed attempt is simply overwritten.
  auto open_tmp = [&] {
    return common::UniqueFd(::open(s.tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, owner_.file_mode));
  };
  s.fd = open_tmp();
  if (!s.fd && errno == ENOENT && known_) {
    // Known, but removed since (an admin deleting a mailbox): made again.
    known_->forget(maildir);
    ensure(maildir);
    s.fd = open_tmp();
  }
  if (!s.fd) fail("open " + s.tmp);
  try {
    if (::fchmod(s.fd.get(), owner_.file_mode) != 0) fail("fchmod " + s.tmp);
    if ((owner_.uid != static_cast<uid_t>(-1) || owner_.gid != static_cast<gid_t>(-1)) &&
        ::fchown(s.fd.get(), owner_.uid, owner_.gid) != 0)
      fail("fchown " + s.tmp);
    std::string buffer;
    produce([&](std::string_view bytes) {
      buffer += bytes;
      s.size += bytes.size();
      if (buffer.size() >= 64 * 1024) {
        write_all(s.fd.get(), buffer, s.tmp);
        buffer.clear();
      }
    });
    write_all(s.fd.get(), buffer, s.tmp);
  } catch (...) {
    ::unlink(s.tmp.c_str());
    throw;
  }
  staged_.push_back(std::move(s));
}

std::uint64_t MaildirBatch::last_size() const { return staged_.empty() ? 0 : staged_.back().size; }

void MaildirBatch::discard_last() {
  if (staged_.empty()) return;
  ::unlink(staged_.back().tmp.c_str());
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
  parallel_for(staged_.size(), [this](std::size_t i) {
    auto& s = staged_[i];
    try {
      if (::fsync(s.fd.get()) != 0) fail("fsync " + s.tmp);
      s.fd.close();
      if (::rename(s.tmp.c_str(), s.dst.c_str()) != 0) fail("rename " + s.tmp);
    } catch (const std::exception& e) {
      s.error = e.what();
      s.fd.reset();
      ::unlink(s.tmp.c_str());
    }
  });
  std::vector<std::string> dirs;  // the Maildirs whose new/ received a rename
  for (const auto& s : staged_)
    if (s.error.empty() && std::find(dirs.begin(), dirs.end(), s.maildir) == dirs.end()) dirs.push_back(s.maildir);
  std::vector<std::string> dir_errors(dirs.size());
  parallel_for(dirs.size(), [&](std::size_t i) {
    try {
      fsync_dir(dirs[i] + "/new");
    } catch (const std::exception& e) {
      dir_errors[i] = e.what();
    }
  });
  std::vector<std::string> out;
  for (auto& s : staged_) {
    if (s.error.empty()) {
      auto d = std::find(dirs.begin(), dirs.end(), s.maildir) - dirs.begin();
      s.error = dir_errors[static_cast<std::size_t>(d)];
    }
    // A Maildir that failed is checked (and made again if need be) next time.
    if (!s.error.empty() && known_) known_->forget(s.maildir);
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
