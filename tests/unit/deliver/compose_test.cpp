#include "deliver/compose.h"
#include "deliver/config.h"
#include "deliver/maildir.h"

#include <dirent.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

using namespace wsmtp::deliver;
using namespace std::chrono_literals;

TEST_CASE("CRLF becomes LF across chunk boundaries, lone CR kept") {
  CrlfToLf c;
  std::string out;
  c.feed("a\r", out);
  c.feed("\nb\rc\r", out);
  c.feed("\r\n", out);
  c.finish(out);
  CHECK(out == "a\nb\rc\r\n");
  CHECK(local_trace_headers("", "x@y") == "Return-Path: <>\nDelivered-To: x@y\n");
}

TEST_CASE("retry backoff doubles and is capped") {
  DeliverConfig c;
  c.retry_base = 60s;
  c.retry_max = 300s;
  CHECK(retry_delay(c, 1) == 60s);
  CHECK(retry_delay(c, 2) == 120s);
  CHECK(retry_delay(c, 3) == 240s);
  CHECK(retry_delay(c, 4) == 300s);
  CHECK(retry_delay(c, 40) == 300s);
}

namespace {
std::filesystem::path temp_dir() {
  auto p = std::filesystem::temp_directory_path() / ("wsmtp-maildir-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p;
}
int count_files(const std::filesystem::path& dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}
}  // namespace

TEST_CASE("Maildir delivery is atomic and idempotent") {
  auto root = temp_dir();
  auto maildir = (root / "a" / "Maildir").string();
  auto name = maildir_unique_name(1700000000, 42, 7, "host/with:odd");
  CHECK(name == "1700000000.W42_7.host\\057with\\072odd");

  auto produce = [](const ByteSink& sink) {
    sink("Subject: hi\n\n");
    sink("body\n");
  };
  CHECK(deliver_to_maildir(maildir, name, produce) == MaildirOutcome::written);
  std::ifstream in(maildir + "/new/" + name);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == "Subject: hi\n\nbody\n");
  CHECK(count_files(maildir + "/tmp") == 0);

  // A retry after a crash between rename and commit must not write a second copy,
  // also when a POP client already moved it to cur/ with flags.
  CHECK(deliver_to_maildir(maildir, name, produce) == MaildirOutcome::already_present);
  std::filesystem::rename(maildir + "/new/" + name, maildir + "/cur/" + name + ":2,S");
  CHECK(deliver_to_maildir(maildir, name, produce) == MaildirOutcome::already_present);
  CHECK(count_files(maildir + "/new") == 0);

  // A failure while producing leaves nothing behind in tmp/ or new/.
  auto failing = [](const ByteSink& sink) {
    sink("partial");
    throw std::runtime_error("database went away");
  };
  CHECK_THROWS(deliver_to_maildir(maildir, "other", failing));
  CHECK(count_files(maildir + "/tmp") == 0);
  CHECK(count_files(maildir + "/new") == 0);
  std::filesystem::remove_all(root);
}
