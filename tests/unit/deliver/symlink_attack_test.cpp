// Issue 15 item 3, the attacks a mailbox owner can make on local delivery:
// a symlink planted at the tmp/ name a copy used to get, a symlinked Maildir,
// tmp/, new/ or cur/, a symlinked or FIFO maildirsize, and a FIFO in place of
// an mbox spool or of the old tmp/ name. None may redirect a write outside the
// mailbox, change the file a link points to, or hang the worker (each
// blocking candidate runs in a child process that is killed after a bound).
#include "deliver/maildir.h"
#include "deliver/maildirsize.h"
#include "deliver/mbox.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

using namespace wsmtp::deliver;

namespace {

namespace fs = std::filesystem;

struct Sandbox {
  fs::path root = fs::temp_directory_path() / ("wsmtp-symlink-attack-" + std::to_string(::getpid()));
  fs::path box = root / "Maildir";
  fs::path outside = root / "outside";  // what the attacker wants written
  Sandbox() {
    fs::remove_all(root);
    for (const char* sub : {"tmp", "new", "cur"}) fs::create_directories(box / sub);
    fs::create_directories(outside);
    std::ofstream(outside / "victim") << "precious\n";
  }
  ~Sandbox() { fs::remove_all(root); }
  std::string victim() const {
    std::ifstream in(outside / "victim");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  std::size_t outside_files() const {
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(outside), fs::directory_iterator()));
  }
  // Replaces Maildir/<sub> (or the Maildir itself for "") with a symlink to outside/,
  // which has the Maildir's subdirectories, so a followed link succeeds.
  void redirect(const std::string& sub) {
    for (const char* d : {"tmp", "new", "cur"}) fs::create_directories(outside / d);
    auto at = sub.empty() ? box : box / sub;
    fs::remove_all(at);
    fs::create_directory_symlink(sub.empty() ? outside : outside / sub, at);
  }
  std::size_t outside_entries() const {
    std::size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(outside))
      if (!e.is_directory()) ++n;
    return n;
  }
};

const auto kProduce = [](const ByteSink& sink) { sink("Subject: x\n\nbody\n"); };

// Runs body in a child process: its exit code, or -1 if it was still running
// after `limit` (then it is killed).
int run_bounded(const std::function<int()>& body, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = 1;
    try {
      rc = body();
    } catch (...) {
      rc = 2;
    }
    ::_exit(rc);
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

TEST_CASE("a symlink planted at the copy's predictable tmp/ name is neither followed nor used") {
  Sandbox s;
  const auto name = maildir_unique_name(1700000000, 42, 7, "mx.example");
  // The name a copy got before the fix was tmp/<unique name>: known in advance.
  fs::create_symlink(s.outside / "victim", s.box / "tmp" / name);
  CHECK(deliver_to_maildir(s.box.string(), name, kProduce) == MaildirOutcome::written);
  CHECK(s.victim() == "precious\n");
  CHECK(fs::is_regular_file(fs::symlink_status(s.box / "new" / name)));
  std::ifstream in(s.box / "new" / name);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == "Subject: x\n\nbody\n");
}

TEST_CASE("a FIFO at the old tmp/ name does not hang the copy") {
  Sandbox s;
  const auto name = maildir_unique_name(1700000000, 42, 8, "mx.example");
  REQUIRE(::mkfifo((s.box / "tmp" / name).c_str(), 0600) == 0);
  CHECK(run_bounded([&] {
          return deliver_to_maildir(s.box.string(), name, kProduce) == MaildirOutcome::written ? 0 : 3;
        }) == 0);
  CHECK(fs::is_regular_file(fs::symlink_status(s.box / "new" / name)));
}

TEST_CASE("a symlinked Maildir, tmp/, new/ or cur/ is refused and nothing lands outside") {
  Sandbox s;
  const auto name = maildir_unique_name(1700000000, 42, 9, "mx.example");
  const std::string sub = GENERATE(as<std::string>{}, "", "tmp", "new", "cur");
  CAPTURE(sub);
  s.redirect(sub);
  // Through stage (looks for an earlier copy in new/ and cur/ first) ...
  try {
    deliver_to_maildir(s.box.string(), name, kProduce);
    FAIL("delivered through a symlink");
  } catch (const MaildirRefused& e) {
    CHECK_THAT(e.what(), Catch::Contains("symbolic link"));
  } catch (const std::runtime_error& e) {
    // new/ and cur/ were not looked at (tmp/ first): refused at the rename.
    CHECK_THAT(e.what(), Catch::Contains("symbolic link"));
  }
  // ... and through write + sync, as a first delivery claim does it.
  {
    MaildirBatch batch;
    try {
      batch.prepare(s.box.string());
      batch.write(s.box.string(), name, kProduce);
      auto errors = batch.sync();
      REQUIRE(errors.size() == 1);
      if (sub == "cur") {
        // cur/ is never written: the copy lands in the real new/.
        CHECK(errors[0].empty());
      } else {
        CHECK_THAT(errors[0], Catch::Contains("symbolic link"));
      }
    } catch (const MaildirRefused& e) {
      CHECK_THAT(e.what(), Catch::Contains("symbolic link"));
    }
  }
  CHECK(s.outside_entries() == 1);  // only the victim
  CHECK(s.victim() == "precious\n");
}

TEST_CASE("a symlinked or FIFO maildirsize is never written through, and never hangs") {
  Sandbox s;
  const MaildirsizeLimits limits{.bytes = 1000000, .messages = 0};
  const auto mdsize = s.box / "maildirsize";
  SECTION("symlink to a file outside") {
    fs::create_symlink(s.outside / "victim", mdsize);
    CHECK_THROWS(append_maildirsize(s.box.string(), 100, 1));
    CHECK(s.victim() == "precious\n");
    fs::remove(mdsize);
    fs::create_symlink(s.outside / "victim", mdsize);
    auto file = read_maildirsize(s.box.string());
    REQUIRE(file);
    CHECK(file->text.empty());  // broken: recalculated, never read through the link
    write_maildirsize(s.box.string(), limits, {100, 1}, 1700000000);
    CHECK(s.victim() == "precious\n");
    CHECK(fs::is_regular_file(fs::symlink_status(mdsize)));
  }
  SECTION("FIFO with a reader waiting on it") {
    REQUIRE(::mkfifo(mdsize.c_str(), 0600) == 0);
    const int reader = ::open(mdsize.c_str(), O_RDONLY | O_NONBLOCK);
    REQUIRE(reader >= 0);
    CHECK(run_bounded([&] {
            try {
              append_maildirsize(s.box.string(), 100, 1);
              return 0;
            } catch (const std::system_error&) {
              return 3;
            }
          }) == 3);
    char buffer[64];
    CHECK(::read(reader, buffer, sizeof buffer) <= 0);  // no quota line went into the FIFO
    ::close(reader);
    CHECK_FALSE(fs::exists(fs::symlink_status(mdsize)));  // removed, to be recalculated
  }
  SECTION("FIFO without a reader") {
    REQUIRE(::mkfifo(mdsize.c_str(), 0600) == 0);
    CHECK(run_bounded([&] {
            auto file = read_maildirsize(s.box.string());
            write_maildirsize(s.box.string(), limits, {100, 1}, 1700000000);
            return file && file->text.empty() ? 0 : 3;
          }) == 0);
    CHECK(fs::is_regular_file(fs::symlink_status(mdsize)));
  }
  SECTION("symlinked tmp/ for the rewrite") {
    s.redirect("tmp");
    CHECK_THROWS(write_maildirsize(s.box.string(), limits, {100, 1}, 1700000000));
    CHECK(s.outside_entries() == 1);
    CHECK_FALSE(fs::exists(fs::symlink_status(mdsize)));
  }
}

TEST_CASE("a FIFO in place of an mbox spool is refused in bounded time and gets no mail") {
  Sandbox s;
  const auto spool = s.root / "spool";
  REQUIRE(::mkfifo(spool.c_str(), 0600) == 0);
  // Larger than a pipe's buffer: a write into the FIFO would block for good.
  const std::string big(256 * 1024, 'x');
  CHECK(run_bounded([&] {
          try {
            deliver_to_mbox(spool.string(), "s@x.org", 1700000000,
                            [&](const MboxSink& sink) {
                              sink("Subject: x\n\n");
                              sink(big);
                              sink("\n");
                            },
                            {});
            return 0;
          } catch (const std::system_error& e) {
            return std::string(e.what()).find("not a regular file") != std::string::npos ? 3 : 4;
          }
        }) == 3);
  CHECK(fs::is_fifo(fs::symlink_status(spool)));
}
