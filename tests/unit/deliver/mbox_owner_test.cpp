// A spool the deliverer creates in a directory of the mail group (like
// /var/mail) belongs to the user it is named after, group mail; anywhere else,
// or named after no user, it stays the deliverer's. An empty spool left ours by
// an earlier attempt is given away on the retry; a spool with mail is never
// re-owned. Ownership checks need root (the test suite runs as root). The
// deliverer writes a spool of the mail directory as its user
// (deliver/fs_identity.h), so files come out owned by that user.
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
  explicit SpoolDir(bool mail_group) {
    dir = std::filesystem::temp_directory_path() /
          ("wsmtp-mbox-owner-" + std::to_string(::getpid()) + (mail_group ? "-mail" : "-other"));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const group* mail = ::getgrnam("mail");
    // As Debian's /var/mail: root:mail 2775, so a spool's user (with group mail) creates its spool and locks.
    if (mail_group && mail && ::geteuid() == 0) {
      REQUIRE(::chown(dir.c_str(), 0, mail->gr_gid) == 0);
      REQUIRE(::chmod(dir.c_str(), 02775) == 0);
    }
  }
  ~SpoolDir() { std::filesystem::remove_all(dir); }
  std::string spool(const std::string& name) const { return (dir / name).string(); }
};

struct stat deliver_one(const std::string& path) {
  deliver_to_mbox(path, "s@x.org", 0, [](const MboxSink& sink) { sink("Subject: hi\n\nbody\n"); }, {});
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st;
}

bool running_as_root_with_mail_group() { return ::geteuid() == 0 && ::getgrnam("mail") != nullptr; }

}  // namespace

TEST_CASE("a new spool in the mail spool directory goes to the user it is named after, group mail, mode 0600") {
  SpoolDir spools(true);
  const passwd* daemon_user = ::getpwnam("daemon");  // present on every Debian system
  REQUIRE(daemon_user);
  auto st = deliver_one(spools.spool("daemon"));
  CHECK((st.st_mode & 07777) == 0600);
  if (running_as_root_with_mail_group()) {
    CHECK(st.st_uid == daemon_user->pw_uid);
    CHECK(st.st_gid == ::getgrnam("mail")->gr_gid);
  } else {
    CHECK(st.st_uid == ::geteuid());  // only root (or CAP_CHOWN) can give files away
  }
}

TEST_CASE("outside a mail-group directory, or named after no user, a new spool stays the deliverer's") {
  SpoolDir elsewhere(false);
  CHECK(deliver_one(elsewhere.spool("daemon")).st_uid == ::geteuid());
  SpoolDir spools(true);
  CHECK(deliver_one(spools.spool("no-such-user-wsmtp")).st_uid == ::geteuid());
}

TEST_CASE("an empty spool left ours by an earlier attempt is given away; one with mail keeps its owner") {
  SpoolDir spools(true);
  const auto left_empty = spools.spool("daemon");
  std::ofstream(left_empty) << "";  // created, then the attempt died before the chown
  auto st = deliver_one(left_empty);
  if (running_as_root_with_mail_group()) CHECK(st.st_uid == ::getpwnam("daemon")->pw_uid);

  const auto with_mail = spools.spool("bin");
  std::ofstream(with_mail) << "From a@b Thu Jan  1 00:00:00 1970\n\nold\n\n";
  st = deliver_one(with_mail);
  CHECK(st.st_uid == ::geteuid());
  CHECK(st.st_size > 40);
}
