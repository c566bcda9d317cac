// libFuzzer target for the Maildir++ quota file parser (deliver/maildirsize.cpp):
// the input is a maildirsize file, which the mailbox owner (or any other MUA)
// can write. Parsing must never crash; limits that parse must come back the same
// from the quota line we would write for them; a file we would write must parse
// to what we wrote; a half-appended last line must not count; and judging the
// file must agree with what it parses to.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "maildirsize.h"

namespace {

using namespace wsmtp::deliver;

// A broken property is a crash, named by its line for the reproducer's reader.
void check(bool ok, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "property failed: %s:%d\n", file, line);
  std::abort();
}

std::uint64_t u64_at(const std::uint8_t* data, std::size_t size, std::size_t offset) {
  std::uint64_t v = 0;
  if (offset + sizeof v <= size) std::memcpy(&v, data + offset, sizeof v);
  return v;
}

void check_round_trip(const MaildirsizeLimits& limits) {
  auto line = maildirsize_quota_line(limits);
  check(!line.empty() && line.find('\n') == std::string::npos);
  auto parsed = parse_maildirsize_quota(line);
  check(parsed.has_value() && *parsed == limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto contents = parse_maildirsize(text);
  if (contents) {
    if (contents->limits) check_round_trip(*contents->limits);
    check(contents->totals.bytes <= std::uint64_t(std::numeric_limits<std::int64_t>::max()));
    // Whatever follows the last newline is an append in progress.
    auto last_nl = text.rfind('\n');
    auto complete = parse_maildirsize(text.substr(0, last_nl + 1));
    check(complete && complete->change_lines == contents->change_lines &&
          complete->totals.bytes == contents->totals.bytes && complete->totals.messages == contents->totals.messages);
  }
  if (auto quota = parse_maildirsize_quota(text.substr(0, text.find('\n')))) check_round_trip(*quota);

  // The judgement follows the parse: usable totals only from a good file.
  const MaildirsizeLimits limits{u64_at(data, size, 0) % 100000, u64_at(data, size, 8) % 100};
  MaildirsizeFile file{std::string(text.substr(0, kMaildirsizeMaxBytes)), size >= kMaildirsizeMaxBytes, 1000};
  auto judged = judge_maildirsize(file, limits, 1000 + (size % 2) * kMaildirsizeStaleSeconds);
  if (judged.usage) {
    auto parsed = parse_maildirsize(file.text);
    check(!file.too_large && parsed && parsed->limits == limits && parsed->change_lines > 0);
    check(judged.usage->bytes == parsed->totals.bytes && judged.usage->messages == parsed->totals.messages);
  } else {
    check(*judged.why != '\0');
  }

  // What write_maildirsize puts in a file, for limits and totals from the input.
  const MaildirsizeLimits written{u64_at(data, size, 0), u64_at(data, size, 8)};
  check_round_trip(written);
  const std::int64_t bytes = static_cast<std::int64_t>(u64_at(data, size, 16) >> 1);
  const std::int64_t messages = static_cast<std::int64_t>(u64_at(data, size, 24) >> 1);
  auto file_text = fmt::format("{}\n{} {}\n", maildirsize_quota_line(written), bytes, messages);
  auto reread = parse_maildirsize(file_text);
  check(reread && reread->limits == written && reread->change_lines == 1);
  check(reread->totals.bytes == std::uint64_t(bytes) && reread->totals.messages == std::uint64_t(messages));
  return 0;
}
