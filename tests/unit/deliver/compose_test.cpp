#include "deliver/compose.h"
#include "deliver/config.h"
#include "deliver/maildir.h"
#include "deliver/mbox.h"

#include <dirent.h>
#include <sys/stat.h>
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

TEST_CASE("CRLF to LF gives the same bytes however the input is cut") {
  // Every split of inputs full of CR, LF and CRLF in odd places, against the
  // rule spelled out one byte at a time.
  auto by_rule = [](const std::string& in) {
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i)
      if (!(in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n')) out += in[i];
    return out;
  };
  for (std::string in : {"\r\r\n\n\r", "x\r\ny\rz\r\r\n", "\r", "\n\r\n\r\r", "plain text, no line end"}) {
    for (std::size_t a = 0; a <= in.size(); ++a)
      for (std::size_t b = a; b <= in.size(); ++b) {
        CrlfToLf c;
        std::string out;
        c.feed(std::string_view(in).substr(0, a), out);
        c.feed(std::string_view(in).substr(a, b - a), out);
        c.feed("", out);
        c.feed(std::string_view(in).substr(b), out);
        c.finish(out);
        INFO("input " << in.size() << " bytes split at " << a << " and " << b);
        CHECK(out == by_rule(in));
      }
  }
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

TEST_CASE("mboxrd quoting: ^>*From gains one '>', across chunk boundaries") {
  auto quote = [](std::vector<std::string> chunks) {
    MboxrdQuoter q;
    std::string out;
    for (const auto& c : chunks) q.feed(c, out);
    q.finish(out);
    return out;
  };
  CHECK(quote({"From me\nxFrom y\n>From z\n>>From w\nFrom\nFro\n"}) ==
        ">From me\nxFrom y\n>>From z\n>>>From w\nFrom\nFro\n");
  CHECK(quote({"a\nFr", "om x\n>", "From y"}) == "a\n>From x\n>>From y\n");
  CHECK(quote({"\n", "From ", "\n"}) == "\n>From \n");
  CHECK(quote({"last line"}) == "last line\n");
  CHECK(quote({}) == "");
  CHECK(mbox_from_line("", 0) == "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n");
  CHECK(mbox_from_line("\"a b\"@x", 0) == "From \"a_b\"@x Thu Jan  1 00:00:00 1970\n");
}

TEST_CASE("mbox append: separator, quoting, and a failed attempt leaves the spool as it was") {
  auto dir = std::filesystem::temp_directory_path() / ("wsmtp-mbox-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto spool = (dir / "user").string();
  MboxOptions options{.lock_timeout = std::chrono::milliseconds(2000), .stale_lock_age = 600s};
  deliver_to_mbox(
      spool, "s@x.org", 0, [](const MboxSink& sink) { sink("Subject: one\n\nFrom here\n"); }, options);
  auto read = [&] {
    std::ifstream in(spool, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  const std::string first = "From s@x.org Thu Jan  1 00:00:00 1970\nSubject: one\n\n>From here\n\n";
  CHECK(read() == first);
  CHECK_THROWS(deliver_to_mbox(
      spool, "s@x.org", 0,
      [](const MboxSink& sink) {
        sink(std::string(100000, 'x'));
        throw std::runtime_error("database went away");
      },
      options));
  CHECK(read() == first);
  CHECK_FALSE(std::filesystem::exists(spool + ".lock"));
  deliver_to_mbox(
      spool, "", 0, [](const MboxSink& sink) { sink("Subject: two\n\nno newline"); }, options);
  CHECK(read() == first + "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nSubject: two\n\nno newline\n\n");
  // A held dot-lock makes the delivery a (temporary) failure after the timeout.
  { std::ofstream(spool + ".lock") << "1\n"; }
  MboxOptions quick{.lock_timeout = std::chrono::milliseconds(100), .stale_lock_age = 600s};
  CHECK_THROWS_AS(deliver_to_mbox(
                      spool, "s@x.org", 0, [](const MboxSink& sink) { sink("x\n"); }, quick),
                  std::system_error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a new mailbox gets the configured owner and modes; a batch syncs many copies at once") {
  auto root = temp_dir();
  auto produce = [](const ByteSink& sink) { sink("Subject: x\n\nbody\n"); };
  MaildirOwner owner;
  owner.dir_mode = 0750;
  owner.file_mode = 0640;
  if (::geteuid() == 0) {
    owner.uid = 65534;  // nobody: only root may give files away
    owner.gid = 65534;
  }
  MaildirBatch batch(owner);
  std::vector<std::string> boxes;
  for (int i = 0; i < 5; ++i) {
    boxes.push_back((root / ("u" + std::to_string(i)) / "Maildir").string());
    CHECK(batch.stage(boxes.back(), "n" + std::to_string(i), produce) == MaildirOutcome::written);
    CHECK(batch.stage(boxes.back(), "m" + std::to_string(i), produce) == MaildirOutcome::written);
  }
  CHECK(count_files(boxes[0] + "/new") == 0);  // nothing is final before sync()
  auto errors = batch.sync();
  REQUIRE(errors.size() == 10);
  for (const auto& e : errors) CHECK(e.empty());
  for (const auto& box : boxes) {
    CHECK(count_files(box + "/new") == 2);
    CHECK(count_files(box + "/tmp") == 0);
    struct stat st {};
    REQUIRE(::stat((box + "/new").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0750);
    if (::geteuid() == 0) CHECK(st.st_uid == 65534u);
  }
  struct stat file {};
  REQUIRE(::stat((boxes[0] + "/new/n0").c_str(), &file) == 0);
  CHECK((file.st_mode & 0777) == 0640);
  std::filesystem::remove_all(root);
}

TEST_CASE("a Maildir known from earlier batches is made again if it was removed") {
  auto root = temp_dir();
  auto box = (root / "u" / "Maildir").string();
  auto produce = [](const ByteSink& sink) { sink("Subject: x\n\nbody\n"); };
  KnownMaildirs known;
  {
    MaildirBatch batch({}, &known);
    CHECK(batch.stage(box, "first", produce) == MaildirOutcome::written);
    CHECK(batch.sync().front().empty());
  }
  CHECK(known.contains(box));
  std::filesystem::remove_all(root / "u");  // the mailbox removed behind the deliverer's back
  {
    MaildirBatch batch({}, &known);
    CHECK(batch.stage(box, "second", produce) == MaildirOutcome::written);
    CHECK(batch.sync().front().empty());
  }
  CHECK(count_files(box + "/new") == 1);
  CHECK(std::filesystem::is_directory(box + "/cur"));
  // Only new/ removed: the rename fails, the copy is reported (to be
  // retried), and the Maildir is checked again next time.
  std::filesystem::remove_all(box + "/new");
  {
    MaildirBatch batch({}, &known);
    CHECK(batch.stage(box, "third", produce) == MaildirOutcome::written);
    CHECK_FALSE(batch.sync().front().empty());
  }
  CHECK_FALSE(known.contains(box));
  {
    MaildirBatch batch({}, &known);
    CHECK(batch.stage(box, "third", produce) == MaildirOutcome::written);
    CHECK(batch.sync().front().empty());
  }
  CHECK(count_files(box + "/new") == 1);
  std::filesystem::remove_all(root);
}

TEST_CASE("prepare makes the Maildir without looking for an earlier copy; contains looks in new/ and cur/") {
  auto root = temp_dir();
  auto box = (root / "u" / "Maildir").string();
  MaildirBatch batch;
  batch.prepare(box);
  CHECK(std::filesystem::is_directory(box + "/tmp"));
  CHECK(std::filesystem::is_directory(box + "/cur"));
  std::ofstream(box + "/cur/copy:2,S") << "moved there by a POP reader\n";
  CHECK(batch.contains(box, "copy"));
  CHECK_FALSE(batch.contains(box, "other"));
  std::filesystem::remove_all(root);
}

TEST_CASE("[deliver] keys: defaults, checks, and the error names the key") {
  auto parse = [](const std::string& text) {
    return read_deliver_config(wsmtp::common::ConfigFile::parse("[deliver]\n" + text, "t.conf"));
  };
  auto c = parse("transports = maildir, mbox, relay, lmtp\nhostname = mx.example.test\n");
  CHECK(c.scaling.max_workers == 4);
  CHECK(c.delay_warning_after == 0s);
  CHECK(c.maildir_dir_mode == 0700u);
  CHECK(parse("hostname = a.b\nmaildir_dir_mode = 0750\nlmtp_server = 127.0.0.1:24\n").maildir_dir_mode == 0750u);
  auto fails = [&](const std::string& text, const std::string& key) {
    try {
      parse("hostname = a.b\n" + text);
    } catch (const wsmtp::common::ConfigError& e) {
      return std::string(e.what()).find(key) != std::string::npos;
    }
    return false;
  };
  CHECK(fails("transports = smoke\n", "transports"));
  CHECK(fails("maildir_dir_mode = 0999\n", "maildir_dir_mode"));
  CHECK(fails("maildir_file_mode = 0400\n", "maildir_file_mode"));
  CHECK(fails("maildir_owner = no-such-user-here\n", "maildir_owner"));
  CHECK(fails("lmtp_server = nocolon\n", "lmtp_server"));
  CHECK(fails("retry_factor = 0\n", "retry_factor"));
}
