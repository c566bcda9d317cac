// A spool the deliverer creates belongs to the user it is named after, group
// mail (when the deliverer runs as root, as the test suite does); a spool
// named after no user, or one that already existed, keeps its owner.
#include "deliver/mbox.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

using namespace wsmtp::deliver;

namespace {

struct SpoolDir {
  std::filesystem::path dir;
  SpoolDir() {
    dir = std::filesystem::temp_directory_path() / ("wsmtp-mbox-owner-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~SpoolDir() { std::filesystem::remove_all(dir); }
};

struct stat deliver_one(const std::string& path) {
  deliver_to_mbox(path, "s@x.org", 0, [](const MboxSink& sink) { sink("Subject: hi\n\nbody\n"); }, {});
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st;
}

}  // namespace

TEST_CASE("a new spool is given to the user it is named after, group mail, mode 0600") {
  SpoolDir spools;
  const passwd* daemon_user = ::getpwnam("daemon");  // present on every Debian system
  REQUIRE(daemon_user);
  auto st = deliver_one((spools.dir / "daemon").string());
  CHECK((st.st_mode & 07777) == 0600);
  if (::geteuid() == 0) {
    CHECK(st.st_uid == daemon_user->pw_uid);
    const group* mail = ::getgrnam("mail");
    CHECK(st.st_gid == (mail ? mail->gr_gid : daemon_user->pw_gid));
  } else {
    CHECK(st.st_uid == ::geteuid());  // only root can give files away
  }
}

TEST_CASE("a spool named after no user, or one that exists already, keeps its owner") {
  SpoolDir spools;
  auto st = deliver_one((spools.dir / "no-such-user-wsmtp").string());
  CHECK(st.st_uid == ::geteuid());

  const auto existing = (spools.dir / "daemon").string();
  std::ofstream(existing) << "";
  auto before_uid = ::geteuid();
  st = deliver_one(existing);
  CHECK(st.st_uid == before_uid);
  CHECK(st.st_size > 0);
}
