// Maildir++ quota files (deliver/maildirsize.h) and how a delivery pass uses
// them (PassQuotas in deliver/quota.h): the quota line as Dovecot writes it,
// summing change lines (Courier's padding, negative lines, a torn last line),
// the recalculation rules (missing, 5120 bytes, broken, other limits, no
// totals; over quota on totals that are not a single fresh line), the atomic
// rewrite and the one-write append, and a pass that reads the file instead of
// scanning, appends per kept copy and never touches an unlimited mailbox's
// file. Times are injected; files live in a temporary directory.
#include "deliver/maildirsize.h"
#include "deliver/quota.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

using namespace wsmtp::deliver;
using wsmtp::common::pg::MailboxQuota;

namespace {

namespace fs = std::filesystem;

// A fixed point in 2001 for file mtimes; "now" is given relative to it.
constexpr std::time_t kThen = 1000000000;

fs::path test_root() {
  auto p = fs::temp_directory_path() / ("wsmtp-mdsize-test-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

fs::path make_maildir(const fs::path& root) {
  auto box = root / "Maildir";
  for (const char* sub : {"tmp", "new", "cur"}) fs::create_directories(box / sub);
  return box;
}

void write_file(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

void set_mtime(const fs::path& path, std::time_t when) {
  timespec times[2] = {{0, UTIME_OMIT}, {when, 0}};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

MaildirsizeFile file_of(std::string text, std::time_t mtime = kThen) { return {std::move(text), false, mtime}; }

}  // namespace

TEST_CASE("maildirsize quota lines: written as Dovecot writes them, read strictly") {
  CHECK(maildirsize_quota_line({4096, 0}) == "4096S");
  CHECK(maildirsize_quota_line({0, 10}) == "10C");
  CHECK(maildirsize_quota_line({4096, 10}) == "4096S,10C");
  CHECK(maildirsize_quota_line({0, 0}) == "0S");
  CHECK(parse_maildirsize_quota("10000000S,1000C") == MaildirsizeLimits{.bytes = 10000000, .messages = 1000});
  CHECK(parse_maildirsize_quota("1000C,5S") == MaildirsizeLimits{.bytes = 5, .messages = 1000});
  CHECK(parse_maildirsize_quota("0S") == MaildirsizeLimits{.bytes = 0, .messages = 0});
  CHECK(parse_maildirsize_quota("4096S,0C") == MaildirsizeLimits{.bytes = 4096, .messages = 0});
  for (const char* bad : {"", "S", "12", "12X", "12S,", ",12S", "12 S", "-1S", "12SC", "99999999999999999999S"})
    CHECK_FALSE(parse_maildirsize_quota(bad));
  CHECK(maildirsize_limits(MailboxQuota{4096, std::nullopt}) == MaildirsizeLimits{.bytes = 4096, .messages = 0});
  CHECK(maildirsize_limits(MailboxQuota{std::nullopt, 3}) == MaildirsizeLimits{.bytes = 0, .messages = 3});
}

TEST_CASE("maildirsize contents: summed change lines, padded or negative; a torn last line waits") {
  auto c = parse_maildirsize("4096S\n1000 2\n500 1\n-300 -1\n");
  REQUIRE(c);
  CHECK(c->limits == MaildirsizeLimits{.bytes = 4096, .messages = 0});
  CHECK(c->totals.bytes == 1200u);
  CHECK(c->totals.messages == 2u);
  CHECK(c->change_lines == 3u);
  // Courier pads both numbers to 12 columns.
  c = parse_maildirsize("10000S,10C\n        1234            3\n");
  REQUIRE(c);
  CHECK(c->totals.bytes == 1234u);
  CHECK(c->totals.messages == 3u);
  // A line still being appended is not counted yet.
  c = parse_maildirsize("4096S\n100 1\n20");
  REQUIRE(c);
  CHECK(c->totals.bytes == 100u);
  CHECK(c->change_lines == 1u);
  // A malformed quota line is reported, not fatal: the file gets our line.
  c = parse_maildirsize("lots\n100 1\n");
  REQUIRE(c);
  CHECK_FALSE(c->limits);
  CHECK(parse_maildirsize("4096S\n")->change_lines == 0u);
}

TEST_CASE("maildirsize contents: broken files") {
  for (const char* broken :
       {"", "4096S", "4096S\n100\n", "4096S\n100 1 1\n", "4096S\nabc 1\n", "4096S\n\n", "4096S\n100 1\n\n",
        "4096S\n100 1\n-200 -1\n", "4096S\n9223372036854775807 1\n1 1\n", "4096S\n+5 1\n"})
    CHECK_FALSE(parse_maildirsize(broken));
  CHECK_FALSE(parse_maildirsize(std::string("4096S\n1\0 1\n", 12)));
}

TEST_CASE("the Maildir++ rules: when maildirsize is used, trusted, or recalculated") {
  const MaildirsizeLimits limits{.bytes = 4096, .messages = 0};
  auto why = [&](const std::optional<MaildirsizeFile>& f) {
    auto j = judge_maildirsize(f, limits, kThen);
    CHECK_FALSE(j.usage);
    return std::string(j.why);
  };
  CHECK(why(std::nullopt) == "missing");
  MaildirsizeFile large = file_of("4096S\n1 1\n");
  large.too_large = true;
  CHECK(why(large) == "5120 bytes or more");
  CHECK(why(file_of("4096S\n1 1\nxx\n")) == "broken");
  CHECK(why(file_of("8192S\n1 1\n")) == "quota changed");
  CHECK(why(file_of("4096S,10C\n1 1\n")) == "quota changed");
  CHECK(why(file_of("4096S\n")) == "no totals");

  // One change line, younger than 15 minutes: trusted even to refuse mail.
  auto j = judge_maildirsize(file_of("4096S\n4000 4\n"), limits, kThen + 899);
  REQUIRE(j.usage);
  CHECK(j.usage->bytes == 4000u);
  CHECK(j.usage->messages == 4u);
  CHECK(j.verified);
  // Older, or several lines: usable, but recounted before refusing a message.
  CHECK_FALSE(judge_maildirsize(file_of("4096S\n4000 4\n"), limits, kThen + 900).verified);
  j = judge_maildirsize(file_of("4096S\n4000 4\n-100 -1\n"), limits, kThen);
  REQUIRE(j.usage);
  CHECK(j.usage->bytes == 3900u);
  CHECK_FALSE(j.verified);
  // 0 in the file means no limit, as in ours.
  CHECK(judge_maildirsize(file_of("0S,3C\n1 1\n"), MaildirsizeLimits{.bytes = 0, .messages = 3}, kThen).usage);
}

TEST_CASE("maildirsize files: read up to 5120 bytes, rewritten atomically, appended in one write") {
  auto root = test_root();
  auto box = make_maildir(root);
  const auto path = box / "maildirsize";
  CHECK_FALSE(read_maildirsize(box.string()));
  CHECK_FALSE(append_maildirsize(box.string(), 100, 1));  // never creates the file
  CHECK_FALSE(fs::exists(path));

  fs::permissions(box, fs::perms(0750));
  write_maildirsize(box.string(), {4096, 10}, {1234, 5}, kThen);
  CHECK(read_file(path) == "4096S,10C\n1234 5\n");
  CHECK((fs::status(path).permissions() & fs::perms::all) == fs::perms(0640));  // the Maildir's, without x
  CHECK(fs::is_empty(box / "tmp"));
  CHECK(append_maildirsize(box.string(), 300, 1));
  CHECK(append_maildirsize(box.string(), -1234, -1));
  CHECK(read_file(path) == "4096S,10C\n1234 5\n300 1\n-1234 -1\n");
  set_mtime(path, kThen);
  auto file = read_maildirsize(box.string());
  REQUIRE(file);
  CHECK(file->mtime == kThen);
  CHECK_FALSE(file->too_large);
  CHECK(judge_maildirsize(file, {4096, 10}, kThen).usage->bytes == 300u);

  write_file(path, "4096S\n" + std::string(5113, ' ') + "\n");  // exactly 5120 bytes
  CHECK(read_maildirsize(box.string())->too_large);
  write_file(path, "4096S\n" + std::string(5112, ' ') + "\n");
  CHECK_FALSE(read_maildirsize(box.string())->too_large);

  // A symlink or a directory under the name reads as broken and is replaced.
  fs::remove(path);
  fs::create_symlink(root / "elsewhere", path);
  CHECK(judge_maildirsize(read_maildirsize(box.string()), {4096, 0}, kThen).why == std::string("broken"));
  write_maildirsize(box.string(), {4096, 0}, {1, 1}, kThen);
  CHECK(fs::is_regular_file(fs::symlink_status(path)));
  CHECK_FALSE(fs::exists(root / "elsewhere"));

  // A hard link planted under the rewrite's temporary name is removed, never
  // written through (tmp/ is the mailbox owner's to write).
  const auto victim = root / "victim";
  write_file(victim, "precious\n");
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof(host) - 1) == 0);
  std::string host_part(host);
  for (auto& ch : host_part)
    if (ch == '/' || ch == ':') ch = '_';
  const auto planted = box / "tmp" / (std::to_string(kThen) + ".P" + std::to_string(::getpid()) + "_maildirsize." + host_part);
  fs::create_hard_link(victim, planted);
  write_maildirsize(box.string(), {4096, 0}, {2, 2}, kThen);
  CHECK(read_file(victim) == "precious\n");
  CHECK(read_file(path) == "4096S\n2 2\n");
  fs::remove_all(root);
}

TEST_CASE("a pass leaves an unlimited mailbox's maildirsize alone") {
  auto root = test_root();
  auto box = make_maildir(root).string();
  MaildirUsageCache cache;
  PassQuotas quotas(cache, [] { return kThen; });
  quotas.use_limits({{"q@x.test", MailboxQuota{4096, std::nullopt}}});
  CHECK(quotas.admit("free@x.test", box, 100000) == QuotaVerdict::fits);
  CHECK_FALSE(fs::exists(fs::path(box) / "maildirsize"));
  write_file(fs::path(box) / "maildirsize", "1S\n999 9\n");  // someone else's, however odd
  set_mtime(fs::path(box) / "maildirsize", kThen);
  CHECK(quotas.admit("free@x.test", box, 100000) == QuotaVerdict::fits);
  CHECK(read_file(fs::path(box) / "maildirsize") == "1S\n999 9\n");
  struct stat st {};
  REQUIRE(::stat((fs::path(box) / "maildirsize").c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec == kThen);
  fs::remove_all(root);
}

TEST_CASE("a pass counts a Maildir without maildirsize once, writes it, and appends per kept copy") {
  auto root = test_root();
  auto box = make_maildir(root);
  write_file(box / "new" / "a", std::string(1000, 'a'));
  write_file(box / "cur" / "b:2,S", std::string(500, 'b'));
  MaildirUsageCache cache;
  PassQuotas quotas(cache, [] { return kThen; });
  quotas.use_limits({{"q@x.test", MailboxQuota{4096, std::nullopt}}});
  CHECK(quotas.admit("q@x.test", box.string(), 300) == QuotaVerdict::fits);
  CHECK(quotas.admit("q@x.test", box.string(), 2000) == QuotaVerdict::fits);
  CHECK(read_file(box / "maildirsize") == "4096S\n1500 2\n300 1\n2000 1\n");
  // 1500 + 300 + 2000 = 3800: 300 more would exceed 4096, and the totals were
  // just counted in this pass, so they are trusted.
  CHECK(quotas.admit("q@x.test", box.string(), 300) == QuotaVerdict::over);
  CHECK(quotas.usage(box.string()).bytes == 3800u);
  CHECK(quotas.usage(box.string()).messages == 4u);
  CHECK(quotas.admit("q@x.test", box.string(), 5000) == QuotaVerdict::too_big);
  CHECK(read_file(box / "maildirsize") == "4096S\n1500 2\n300 1\n2000 1\n");
  fs::remove_all(root);
}

TEST_CASE("a valid maildirsize is used without scanning; other limits or 5120 bytes make a recount") {
  auto root = test_root();
  auto box = make_maildir(root);
  write_file(box / "new" / "a", std::string(3500, 'a'));
  write_file(box / "maildirsize", "4096S\n100 1\n");
  MaildirUsageCache cache;
  PassQuotas quotas(cache, [] { return kThen; });
  quotas.use_limits({{"q@x.test", MailboxQuota{4096, std::nullopt}}});
  // The file says 100 bytes (a scan would say 3500): it is believed.
  CHECK(quotas.admit("q@x.test", box.string(), 1000) == QuotaVerdict::fits);
  CHECK(read_file(box / "maildirsize") == "4096S\n100 1\n1000 1\n");

  // The database's limits changed: counted again, written with the new line.
  quotas.use_limits({{"q@x.test", MailboxQuota{8192, 10}}});
  CHECK(quotas.admit("q@x.test", box.string(), 1000) == QuotaVerdict::fits);
  CHECK(read_file(box / "maildirsize") == "8192S,10C\n3500 1\n1000 1\n");

  // Grown to 5120 bytes: counted again.
  std::string text = "8192S,10C\n";
  while (text.size() < kMaildirsizeMaxBytes) text += "1 0\n";
  write_file(box / "maildirsize", text);
  quotas.use_limits({{"q@x.test", MailboxQuota{8192, 10}}});
  CHECK(quotas.admit("q@x.test", box.string(), 10) == QuotaVerdict::fits);
  CHECK(read_file(box / "maildirsize") == "8192S,10C\n3500 1\n10 1\n");
  fs::remove_all(root);
}

TEST_CASE("refusing mail: unverified totals are recounted first, a fresh single line is trusted") {
  auto root = test_root();
  auto box = make_maildir(root);
  const auto path = box / "maildirsize";
  write_file(box / "cur" / "a:2,S", std::string(1000, 'a'));
  MaildirUsageCache cache;
  std::time_t now = kThen + 60;
  PassQuotas quotas(cache, [&now] { return now; });
  const std::map<std::string, MailboxQuota> limits{{"q@x.test", MailboxQuota{4096, std::nullopt}}};

  // A reader deleted three messages without updating the file.
  write_file(path, "4096S\n4000 4\n");
  set_mtime(path, kThen);
  quotas.use_limits(limits);
  CHECK(quotas.admit("q@x.test", box.string(), 500) == QuotaVerdict::over);  // fresh single line: trusted
  CHECK(read_file(path) == "4096S\n4000 4\n");
  CHECK(quotas.usage(box.string()).bytes == 4000u);
  now = kThen + 15 * 60;  // stale: recounted before refusing
  quotas.use_limits(limits);
  CHECK(quotas.admit("q@x.test", box.string(), 500) == QuotaVerdict::fits);
  CHECK(read_file(path) == "4096S\n1000 1\n500 1\n");

  // Several lines: recounted before refusing, counting this pass's staged copies.
  write_file(path, "4096S\n2000 2\n1000 1\n");
  set_mtime(path, kThen);
  now = kThen + 60;
  quotas.use_limits(limits);
  CHECK(quotas.admit("q@x.test", box.string(), 500) == QuotaVerdict::fits);  // 3500 by the file
  CHECK(quotas.admit("q@x.test", box.string(), 700) == QuotaVerdict::fits);  // 4200: recount says 1000 + 500
  CHECK(read_file(path) == "4096S\n1500 2\n700 1\n");
  CHECK(quotas.usage(box.string()).bytes == 2200u);
  CHECK(quotas.usage(box.string()).messages == 3u);
  fs::remove_all(root);
}

TEST_CASE("a Maildir++ reader's negative lines free the room at the next pass") {
  auto root = test_root();
  auto box = make_maildir(root);
  const auto path = box / "maildirsize";
  MaildirUsageCache cache;
  PassQuotas quotas(cache, [] { return kThen + 60; });
  const std::map<std::string, MailboxQuota> limits{{"q@x.test", MailboxQuota{std::nullopt, 3}}};
  write_file(path, "3C\n3000 3\n");
  set_mtime(path, kThen);
  quotas.use_limits(limits);
  CHECK(quotas.admit("q@x.test", box.string(), 10) == QuotaVerdict::over);
  // Dovecot expunged two messages (POP3 DELE): it appends their negative sizes.
  REQUIRE(append_maildirsize(box.string(), -2000, -2));
  quotas.use_limits(limits);
  CHECK(quotas.admit("q@x.test", box.string(), 10) == QuotaVerdict::fits);
  CHECK(quotas.admit("q@x.test", box.string(), 10) == QuotaVerdict::fits);
  // Full again at 3 messages; the totals are not verified (several lines), so
  // the Maildir is counted (empty here: nothing was really written) before refusing.
  CHECK(quotas.admit("q@x.test", box.string(), 10) == QuotaVerdict::fits);
  CHECK(read_file(path) == "3C\n20 2\n10 1\n");
  fs::remove_all(root);
}
