// FsIdentity changes only the calling thread's file-system ids, only for its
// lifetime, and never to root. Needs root to switch (the suite runs as root).
#include "deliver/fs_identity.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <thread>

#include <catch2/catch.hpp>

using wsmtp::deliver::FsIdentity;

namespace {

uid_t owner_of_new_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  ::close(fd);
  return st.st_uid;
}

}  // namespace

TEST_CASE("files created while an FsIdentity lives belong to it; other threads and later files do not") {
  if (::geteuid() != 0) {
    WARN("not root: cannot switch ids, nothing checked");
    return;
  }
  const passwd* daemon_user = ::getpwnam("daemon");
  REQUIRE(daemon_user);
  const auto dir = std::filesystem::temp_directory_path() / ("wsmtp-fsid-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::all);  // daemon may create here
  // A thread that exists before the switch (as a worker's lease renewal does)
  // keeps its own ids; one started during it would inherit them.
  std::promise<void> go;
  uid_t other_thread = 12345;
  std::thread renewal([&, started = go.get_future()]() mutable {
    started.wait();
    other_thread = owner_of_new_file(dir / "other-thread");
  });
  {
    auto as_daemon = FsIdentity::assume(daemon_user->pw_uid, daemon_user->pw_gid);
    REQUIRE(as_daemon);
    CHECK(owner_of_new_file(dir / "during") == daemon_user->pw_uid);
    go.set_value();
    renewal.join();
    CHECK(other_thread == 0);
    // As daemon, root's 0600 file is out of reach.
    CHECK(::open((dir / "other-thread").c_str(), O_RDONLY | O_CLOEXEC) < 0);
  }
  CHECK(owner_of_new_file(dir / "after") == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("FsIdentity never becomes root") { CHECK_FALSE(FsIdentity::assume(0, 0)); }
