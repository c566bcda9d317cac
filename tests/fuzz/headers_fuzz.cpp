// libFuzzer target for the router's reading of header sections
// (common/mail/headers.cpp, router/autoreply.cpp): the input is the start of a
// stored message. The parsed fields must be well-formed (a valid name, a
// one-line trimmed value), the chunked HeaderCollector must see exactly what a
// one-shot parse sees, and an auto-reply composed from these headers must be a
// well-formed message whose header section holds only the fields it writes:
// nothing in the original may inject a header line.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "autoreply.h"
#include "mail/headers.h"

namespace {

using namespace wsmtp::common::mail;
using wsmtp::common::to_lower_ascii;

// A broken property is a crash, named by its line for the reproducer's reader.
void check(bool ok, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "property failed: %s:%d\n", file, line);
  std::abort();
}

bool is_blank_or_eol(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

void check_fields(const HeaderBlock& block, const HeaderLimits& limits) {
  check(block.fields().size() <= limits.max_fields);
  for (const auto& f : block.fields()) {
    check(!f.name.empty());
    for (char c : f.name) check(static_cast<unsigned char>(c) > 32 && static_cast<unsigned char>(c) < 127 && c != ':');
    check(f.value.find('\n') == std::string::npos);
    check(f.value.empty() || (!is_blank_or_eol(f.value.front()) && !is_blank_or_eol(f.value.back())));
    check(block.first(f.name).has_value() && !block.all(f.name).empty());
    check(block.has_prefix(f.name.substr(0, 1)));
  }
}

bool same_fields(const HeaderBlock& a, const HeaderBlock& b) {
  if (a.complete() != b.complete() || a.fields().size() != b.fields().size()) return false;
  for (std::size_t i = 0; i < a.fields().size(); ++i)
    if (a.fields()[i].name != b.fields()[i].name || a.fields()[i].value != b.fields()[i].value) return false;
  return true;
}

void check_autoreply(const HeaderBlock& original) {
  wsmtp::router::AutoReplyMessage r;
  r.from = "bob@example.org";
  r.to = "alice@example.net";
  r.text = "Away until Monday.\nBack soon.\r\n";
  r.hostname = "mx.example.org";
  r.message_id = "20261205.1";
  r.now = 1700000000;
  const std::string m = wsmtp::router::compose_autoreply(r, original);
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\r') check(i + 1 < m.size() && m[i + 1] == '\n');
    if (m[i] == '\n') check(i > 0 && m[i - 1] == '\r');
  }
  auto reply = HeaderBlock::parse(m);
  check(reply.complete());
  std::vector<std::string> names;
  for (const auto& f : reply.fields()) names.push_back(f.name);
  std::vector<std::string> expected{"From", "To", "Subject", "Date", "Message-ID"};
  if (!first_angle_token(original.first("Message-ID").value_or("")).empty()) {
    expected.push_back("In-Reply-To");
    expected.push_back("References");
  }
  for (const char* n : {"Auto-Submitted", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"})
    expected.push_back(n);
  check(names == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::size_t step = size == 0 ? 1 : 1 + data[size - 1] % 13;
  // Small limits as well as the defaults, so the caps are reached.
  for (HeaderLimits limits : {HeaderLimits{}, HeaderLimits{1 + size / 2, 1 + size % 7}}) {
    auto block = HeaderBlock::parse(text, limits);
    check_fields(block, limits);
    HeaderCollector collector(limits);
    bool done = false;
    for (std::size_t pos = 0; pos < text.size() && !done; pos += step) done = collector.feed(text.substr(pos, step));
    check(done || !block.complete());
    check(same_fields(collector.block(), block));
  }

  auto block = HeaderBlock::parse(text);
  wsmtp::router::autoreply_message_excluded(block);
  wsmtp::router::autoreply_direct_recipient(block, "bob@example.org", "Bob@Example.org");
  for (const auto& f : block.fields()) {
    auto token = first_angle_token(f.value);
    check(token.empty() || (token.front() == '<' && token.back() == '>' && f.value.find(token) != std::string::npos));
    if (token.size() > 2) {
      auto address = to_lower_ascii(std::string_view(token).substr(1, token.size() - 2));
      // "<addr>" mentions addr; whatever is mentioned occurs in the value.
      check(mentions_address(token, address));
      if (mentions_address(f.value, address)) check(to_lower_ascii(f.value).find(address) != std::string::npos);
    }
  }
  check_autoreply(block);
  return 0;
}
