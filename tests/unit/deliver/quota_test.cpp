// Mailbox quotas (deliver/quota.h): the verdict table, Maildir++ size fields in
// names, the usage scan (new/ and cur/ of the Maildir and its folders, never
// tmp/ or hidden files), its cache (kept while the directories are unchanged),
// the over_quota key, and a quota-checked copy taken back from a batch.
#include "deliver/config.h"
#include "deliver/maildir.h"
#include "deliver/quota.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

using namespace wsmtp::deliver;
using wsmtp::common::pg::MailboxQuota;

namespace {

std::filesystem::path quota_dir() {
  auto p = std::filesystem::temp_directory_path() / ("wsmtp-quota-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

void write_file(const std::filesystem::path& path, std::size_t bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << std::string(bytes, 'm');
}

// Sets a directory's mtime to a fixed point in 2001: old enough for the cache
// to trust it, and the same every time.
void age(const std::filesystem::path& dir) {
  timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, dir.c_str(), times, 0) == 0);
}

}  // namespace

TEST_CASE("quota verdicts: fits, over by bytes or count, too big for the quota at all") {
  MailboxQuota bytes{1000, std::nullopt};
  MailboxQuota count{std::nullopt, 3};
  MailboxQuota both{1000, 3};
  CHECK(check_quota({0, 0}, 1000, bytes) == QuotaVerdict::fits);
  CHECK(check_quota({1, 1}, 1000, bytes) == QuotaVerdict::over);
  CHECK(check_quota({900, 9}, 100, bytes) == QuotaVerdict::fits);
  CHECK(check_quota({0, 0}, 1001, bytes) == QuotaVerdict::too_big);
  CHECK(check_quota({999999, 2}, 5000, count) == QuotaVerdict::fits);
  CHECK(check_quota({0, 3}, 1, count) == QuotaVerdict::over);
  CHECK(check_quota({10, 3}, 10, both) == QuotaVerdict::over);
  CHECK(check_quota({10, 2}, 10, both) == QuotaVerdict::fits);
  CHECK(check_quota({500, 2}, 2000, both) == QuotaVerdict::too_big);
}

TEST_CASE("Maildir++ names announce sizes; anything else needs a stat") {
  CHECK(maildir_name_size("1700000000.M1P2.host,S=1234:2,S") == 1234u);
  CHECK(maildir_name_size("1700000000.M1P2.host,S=77,W=80") == 77u);
  CHECK(maildir_name_size("1700000000.W5_6.host") == std::nullopt);
  CHECK(maildir_name_size("x,S=:2,") == std::nullopt);
  CHECK(maildir_name_size("x,S=12a") == std::nullopt);
  CHECK(maildir_name_size("x:2,S=99") == std::nullopt);  // only before the info part
  CHECK(human_bytes(512) == "512B");
  CHECK(human_bytes(4096) == "4.0K");
  CHECK(human_bytes(5 * 1024 * 1024 + 512 * 1024) == "5.5M");
}

TEST_CASE("usage counts new/, cur/ and Maildir++ folders, and is cached while nothing changes") {
  auto root = quota_dir();
  auto box = root / "Maildir";
  write_file(box / "new" / "a", 100);
  write_file(box / "cur" / "b:2,S", 200);
  write_file(box / "cur" / "c,S=300:2,", 5);  // the name's size counts, not the file's
  write_file(box / "tmp" / "partial", 10000);
  write_file(box / "new" / ".hidden", 10000);
  write_file(box / ".Sent" / "cur" / "d", 400);
  write_file(box / "maildirsize", 10000);
  for (const auto* d : {"", "new", "cur", ".Sent", ".Sent/cur"}) age(box / d);
  MaildirUsageCache cache;
  auto u = cache.usage(box.string());
  CHECK(u.bytes == 1000u);
  CHECK(u.messages == 4u);
  // A file growing in place does not touch its directory: the cached scan stands.
  write_file(box / "new" / "a", 5000);
  age(box / "new");
  CHECK(cache.usage(box.string()).bytes == 1000u);
  // A new message changes new/'s mtime: scanned again.
  write_file(box / "new" / "e", 50);
  u = cache.usage(box.string());
  CHECK(u.messages == 5u);
  CHECK(u.bytes == 5000u + 200 + 300 + 400 + 50);
  // A reader deleting mail frees the space at once.
  std::filesystem::remove(box / "cur" / "b:2,S");
  CHECK(cache.usage(box.string()).messages == 4u);
  CHECK(cache.usage((root / "missing").string()).messages == 0u);
  std::filesystem::remove_all(root);
}

TEST_CASE("a copy over quota is taken back from the batch and never reaches new/") {
  auto root = quota_dir();
  auto box = (root / "Maildir").string();
  MaildirBatch batch;
  auto produce = [](const ByteSink& sink) { sink(std::string(300, 'z')); };
  CHECK_FALSE(batch.contains(box, "one"));
  batch.write(box, "one", produce);
  batch.write(box, "two", produce);
  CHECK(batch.last_size() == 300u);
  batch.discard_last();
  CHECK(batch.size() == 1u);
  auto errors = batch.sync();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].empty());
  CHECK(std::filesystem::exists(root / "Maildir" / "new" / "one"));
  CHECK_FALSE(std::filesystem::exists(root / "Maildir" / "new" / "two"));
  CHECK(std::filesystem::is_empty(root / "Maildir" / "tmp"));
  CHECK(batch.contains(box, "one"));
  std::filesystem::remove_all(root);
}

TEST_CASE("[deliver] over_quota: defer by default, bounce on request, nothing else") {
  auto parse = [](const std::string& text) {
    return read_deliver_config(wsmtp::common::ConfigFile::parse("[deliver]\nhostname = a.b\n" + text, "t.conf"));
  };
  CHECK(parse("").over_quota == DeliverConfig::OverQuota::defer);
  CHECK(parse("over_quota = bounce\n").over_quota == DeliverConfig::OverQuota::bounce);
  CHECK_THROWS_WITH(parse("over_quota = drop\n"), Catch::Contains("over_quota"));
}
