// Exactly-once mbox appends (deliver/mbox.h, MboxCopyId): the offset is
// journalled before the first byte, a retry finds a finished copy and appends
// nothing, an unfinished copy at the end of the spool is replaced, one that
// other mail follows stays and a full copy is added, and a failed journal
// write appends nothing at all.
#include "deliver/mbox.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

using namespace wsmtp::deliver;

namespace {

struct Spool {
  std::filesystem::path dir;
  std::string path;
  Spool() {
    dir = std::filesystem::temp_directory_path() / ("wsmtp-mbox-once-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    path = (dir / "spool").string();
  }
  ~Spool() { std::filesystem::remove_all(dir); }
  std::string text() const {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  void append_raw(const std::string& bytes) const { std::ofstream(path, std::ios::binary | std::ios::app) << bytes; }
};

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

MboxOutcome append(const Spool& spool, MboxCopyId& copy, std::vector<std::int64_t>& journal,
                   const std::string& body = "Subject: once\n\nbody\n") {
  copy.record_offset = [&journal](std::int64_t offset) { journal.push_back(offset); };
  return deliver_to_mbox(
      spool.path, "s@x.org", 0, [&](const MboxSink& sink) { sink(body); }, {}, &copy);
}

}  // namespace

TEST_CASE("a finished copy is found by its retry and not appended again") {
  Spool spool;
  spool.append_raw("From other@x Thu Jan  1 00:00:00 1970\nSubject: before\n\nx\n\n");
  const auto start = static_cast<std::int64_t>(spool.text().size());
  MboxCopyId copy{"1700000000.W7_9", std::nullopt, {}};
  std::vector<std::int64_t> journal;
  CHECK(append(spool, copy, journal) == MboxOutcome::appended);
  CHECK(journal == std::vector<std::int64_t>{start});
  CHECK(spool.text().substr(static_cast<std::size_t>(start)) ==
        "From s@x.org Thu Jan  1 00:00:00 1970\nX-WSMTP-Delivery: 1700000000.W7_9 done\nSubject: once\n\nbody\n\n");
  // The crash came after the append: the retry knows the offset.
  spool.append_raw("From later@x Thu Jan  1 00:00:00 1970\nSubject: after\n\ny\n\n");
  const auto before = spool.text();
  copy.previous_offset = start;
  CHECK(append(spool, copy, journal) == MboxOutcome::already_present);
  CHECK(spool.text() == before);
  CHECK(journal.size() == 1u);
}

TEST_CASE("an unfinished copy at the end of the spool is cut off and written again") {
  Spool spool;
  spool.append_raw("From other@x Thu Jan  1 00:00:00 1970\nSubject: before\n\nx\n\n");
  const auto start = static_cast<std::int64_t>(spool.text().size());
  spool.append_raw("From s@x.org Thu Jan  1 00:00:00 1970\nX-WSMTP-Delivery: T1 open\nSubject: once\n\nbo");
  MboxCopyId copy{"T1", start, {}};
  std::vector<std::int64_t> journal;
  CHECK(append(spool, copy, journal) == MboxOutcome::replaced_partial);
  CHECK(journal == std::vector<std::int64_t>{start});
  auto text = spool.text();
  CHECK(count(text, "X-WSMTP-Delivery: T1") == 1);
  CHECK(text.substr(static_cast<std::size_t>(start)).find("T1 done\nSubject: once\n\nbody\n\n") != std::string::npos);
}

TEST_CASE("an unfinished copy followed by other mail stays, and a full copy is appended") {
  Spool spool;
  spool.append_raw("From s@x.org Thu Jan  1 00:00:00 1970\nX-WSMTP-Delivery: T2 open\nSubject: once\n\nbo\n");
  spool.append_raw("From other@x Thu Jan  1 00:00:00 1970\nSubject: after\n\nx\n\n");
  MboxCopyId copy{"T2", 0, {}};
  std::vector<std::int64_t> journal;
  CHECK(append(spool, copy, journal) == MboxOutcome::appended_after_partial);
  auto text = spool.text();
  CHECK(count(text, "X-WSMTP-Delivery: T2 open") == 1);
  CHECK(count(text, "X-WSMTP-Delivery: T2 done") == 1);
  CHECK(count(text, "Subject: after") == 1);
}

TEST_CASE("an offset that no longer points at our copy means: append") {
  Spool spool;
  spool.append_raw("From other@x Thu Jan  1 00:00:00 1970\nSubject: rewritten\n\nx\n\n");
  MboxCopyId copy{"T3", 0, {}};
  std::vector<std::int64_t> journal;
  CHECK(append(spool, copy, journal) == MboxOutcome::appended);
  copy.previous_offset = 1 << 30;  // beyond the end: the spool shrank
  CHECK(append(spool, copy, journal) == MboxOutcome::appended);
  CHECK(count(spool.text(), "X-WSMTP-Delivery: T3 done") == 2);
}

TEST_CASE("a journal that cannot be written stops the append before its first byte") {
  Spool spool;
  spool.append_raw("From other@x Thu Jan  1 00:00:00 1970\nSubject: before\n\nx\n\n");
  const auto before = spool.text();
  MboxCopyId copy{"T4", std::nullopt, [](std::int64_t) { throw std::runtime_error("database down"); }};
  CHECK_THROWS_WITH(deliver_to_mbox(
                        spool.path, "s@x.org", 0, [](const MboxSink& sink) { sink("Subject: no\n\nx\n"); }, {}, &copy),
                    "database down");
  CHECK(spool.text() == before);
}
