// libFuzzer target for the relay client's reading of server replies
// (common/smtp/reply.cpp parse_reply, deliver/smtp_client.cpp parse_ehlo): the
// input is what a remote server sends, split into lines at LF with a CR before
// it dropped, as the client's reader does. Whatever parses must be a reply the
// defer-or-bounce decision can trust (code 200..599, exactly one class, an
// enhanced code only of the code's class), must survive Reply::wire() and a
// second parse, and EHLO parsing of it must not crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "smtp_client.h"
#include "smtp/reply.h"

namespace {

using namespace wsmtp::common::smtp;

// A broken property is a crash, named by its line for the reproducer's reader.
void check(bool ok, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "property failed: %s:%d\n", file, line);
  std::abort();
}

std::vector<std::string> split_lines(std::string_view bytes) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    auto nl = bytes.find('\n', pos);
    auto line = bytes.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.emplace_back(line);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto lines = split_lines(bytes);
  auto reply = parse_reply(lines);
  if (!reply) return 0;
  check(reply->code >= 200 && reply->code <= 599);
  check(reply->is_positive() + reply->is_transient() + reply->is_permanent() == 1);
  const auto& st = reply->status;
  check(!st.present() || st.cls == reply->code / 100);
  check(st.subject >= 0 && st.subject <= 999 && st.detail >= 0 && st.detail <= 999);
  // One text line per reply line.
  std::size_t text_lines = 1;
  for (char c : reply->text) text_lines += c == '\n';
  check(text_lines == lines.size());

  auto again = parse_reply(split_lines(reply->wire()));
  check(again.has_value());
  check(again->code == reply->code);
  // wire() repeats the enhanced code on every line and parsing takes one off
  // each, so with a code the text comes back exactly.
  if (st.present()) check(again->status == st && again->text == reply->text);

  auto ext = parse_ehlo(*reply);
  check(ext.esmtp && !ext.tls_active);
  check(ext.size || ext.size_limit == 0);
  return 0;
}
