// libFuzzer target for the two transparency encodings of a message on its way
// out: SMTP dot-stuffing (deliver/dot_stuff.cpp) and mboxrd ">From "
// quoting (deliver/mbox.cpp). Each is checked against a small reference
// decoder written here: decoding the output must give back the input (with its
// line ends normalized), and the output must hold no line that ends the message
// early (a lone "." before the terminator, a "From " line after the separator).
// The input is fed in pieces whose size the input chooses, as bodies stream.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mbox.h"
#include "dot_stuff.h"

namespace {

// A broken property is a crash, named by its line for the reproducer's reader.
void check(bool ok, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "property failed: %s:%d\n", file, line);
  std::abort();
}

// Lines of text without their terminator `eol`; a last unterminated piece is
// returned in `tail`.
std::vector<std::string_view> lines_of(std::string_view text, std::string_view eol, std::string_view& tail) {
  std::vector<std::string_view> lines;
  std::size_t pos = 0;
  for (auto end = text.find(eol); end != std::string_view::npos; end = text.find(eol, pos)) {
    lines.push_back(text.substr(pos, end - pos));
    pos = end + eol.size();
  }
  tail = text.substr(pos);
  return lines;
}

// What DATA carries: every CRLF, bare CR and bare LF is one CRLF, and a last
// line is terminated.
std::string crlf_normalized(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r' || in[i] == '\n') {
      if (in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n') ++i;
      out += "\r\n";
    } else {
      out += in[i];
    }
  }
  if (!out.empty() && out.back() != '\n') out += "\r\n";
  return out;
}

void check_dot_stuffing(std::string_view in, std::size_t step) {
  wsmtp::common::smtp::DotStuffer stuffer;
  std::string out;
  for (std::size_t pos = 0; pos < in.size(); pos += step) stuffer.feed(in.substr(pos, step), out);
  stuffer.finish(out);

  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\r') check(i + 1 < out.size() && out[i + 1] == '\n');
    if (out[i] == '\n') check(i > 0 && out[i - 1] == '\r');
  }
  std::string_view tail;
  auto lines = lines_of(out, "\r\n", tail);
  check(tail.empty() && !lines.empty() && lines.back() == ".");
  // The receiver's side (RFC 5321 §4.5.2): the first lone "." ends the data,
  // and a leading '.' is dropped from every other line.
  std::string unstuffed;
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    auto line = lines[i];
    check(line != ".");
    if (!line.empty() && line.front() == '.') line.remove_prefix(1);
    unstuffed.append(line).append("\r\n");
  }
  check(unstuffed == crlf_normalized(in));
}

bool is_quoted_from(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && line[i] == '>') ++i;
  return i > 0 && line.substr(i, 5) == "From ";
}

void check_mbox_quoting(std::string_view in, std::size_t step) {
  wsmtp::deliver::MboxrdQuoter quoter;
  // One message as deliver_to_mbox writes it: separator, quoted body, blank line.
  std::string separator = wsmtp::deliver::mbox_from_line(in.substr(0, 40), 1700000000);
  std::string out = separator;
  for (std::size_t pos = 0; pos < in.size(); pos += step) quoter.feed(in.substr(pos, step), out);
  quoter.finish(out);
  out += '\n';

  check(separator.rfind("From ", 0) == 0 && separator.find('\n') == separator.size() - 1);
  std::string_view tail;
  auto lines = lines_of(std::string_view(out).substr(separator.size()), "\n", tail);
  check(tail.empty() && !lines.empty() && lines.back().empty());
  // A mboxrd reader: a line matching ^>+From␣ loses one '>'.
  std::string unquoted;
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    auto line = lines[i];
    check(line.rfind("From ", 0) != 0);
    if (is_quoted_from(line)) line.remove_prefix(1);
    unquoted.append(line).append("\n");
  }
  std::string expected(in);
  if (!expected.empty() && expected.back() != '\n') expected += '\n';
  check(unquoted == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t step = size == 0 ? 1 : 1 + data[size - 1] % 11;
  check_dot_stuffing(in, step);
  check_mbox_quoting(in, step);
  return 0;
}
