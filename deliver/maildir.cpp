#include "maildir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include <fmt/format.h>

#include "unique_fd.h"

namespace wsmtp::deliver {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) fail("mkdir " + path);
}

void ensure_maildir(const std::string& maildir) {
  // Parents first: a new mailbox's directory may not exist yet.
  for (std::size_t pos = 1; (pos = maildir.find('/', pos)) != std::string::npos; ++pos) make_dir(maildir.substr(0, pos));
  make_dir(maildir);
  for (const char* sub : {"/tmp", "/new", "/cur"}) make_dir(maildir + sub);
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

void write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write " + path);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

std::string maildir_unique_name(std::int64_t received_epoch, std::int64_t msg_id, std::int64_t delivery_id,
                                std::string_view host) {
  std::string safe;
  for (char ch : host) {
    if (ch == '/') safe += "\\057";
    else if (ch == ':') safe += "\\072";
    else safe += ch;
  }
  return fmt::format("{}.W{}_{}.{}", received_epoch, msg_id, delivery_id, safe);
}

MaildirOutcome deliver_to_maildir(const std::string& maildir, const std::string& unique_name,
                                  const std::function<void(const ByteSink&)>& produce) {
  ensure_maildir(maildir);
  if (already_delivered(maildir, unique_name)) return MaildirOutcome::already_present;
  const std::string tmp = maildir + "/tmp/" + unique_name;
  const std::string dst = maildir + "/new/" + unique_name;
  // O_TRUNC: a tmp file left by a crashed attempt is simply overwritten.
  common::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) fail("open " + tmp);
  try {
    std::string buffer;
    produce([&](std::string_view bytes) {
      buffer += bytes;
      if (buffer.size() >= 64 * 1024) {
        write_all(fd.get(), buffer, tmp);
        buffer.clear();
      }
    });
    write_all(fd.get(), buffer, tmp);
    if (::fsync(fd.get()) != 0) fail("fsync " + tmp);
    fd.close();
    if (::rename(tmp.c_str(), dst.c_str()) != 0) fail("rename " + tmp);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  fsync_dir(maildir + "/new");
  return MaildirOutcome::written;
}

}  // namespace wsmtp::deliver
