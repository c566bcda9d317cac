// Reply formatting and parsing (RFC 5321 §4.2, RFC 2034 enhanced codes).
#include "smtp/reply.h"

#include <charconv>

#include <fmt/format.h>

namespace wsmtp::common::smtp {

std::string EnhancedCode::str() const { return fmt::format("{}.{}.{}", cls, subject, detail); }

std::string Reply::wire() const {
  std::string out;
  std::string_view rest = text;
  std::string prefix = status.present() ? status.str() + " " : std::string();
  do {
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    bool last = nl == std::string_view::npos;
    out += fmt::format("{}{}{}{}\r\n", code, last ? ' ' : '-', prefix, line);
    rest = last ? std::string_view() : rest.substr(nl + 1);
    if (last) break;
  } while (true);
  return out;
}

namespace {

std::optional<EnhancedCode> parse_enhanced(std::string_view& text) {
  // class "." subject "." detail, followed by a space or the end (RFC 3463 §2)
  EnhancedCode ec;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  auto num = [&](int& out) {
    // 1*3DIGIT: from_chars alone would take a sign ("5.-1.1").
    if (p == end || *p < '0' || *p > '9') return false;
    auto r = std::from_chars(p, end, out);
    if (r.ec != std::errc() || r.ptr == p || r.ptr - p > 3) return false;
    p = r.ptr;
    return true;
  };
  if (!num(ec.cls) || p == end || *p++ != '.') return std::nullopt;
  if (!num(ec.subject) || p == end || *p++ != '.') return std::nullopt;
  if (!num(ec.detail)) return std::nullopt;
  if (p != end && *p != ' ') return std::nullopt;
  if (ec.cls != 2 && ec.cls != 4 && ec.cls != 5) return std::nullopt;
  if (p != end) ++p;
  text = std::string_view(p, end - p);
  return ec;
}

}  // namespace

std::optional<Reply> parse_reply(const std::vector<std::string>& lines) {
  if (lines.empty()) return std::nullopt;
  Reply reply;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.size() < 3) return std::nullopt;
    int code = 0;
    auto r = std::from_chars(line.data(), line.data() + 3, code);
    if (r.ec != std::errc() || r.ptr != line.data() + 3 || code < 200 || code > 599) return std::nullopt;
    bool last = i + 1 == lines.size();
    char sep = line.size() > 3 ? line[3] : ' ';
    if ((last && sep != ' ') || (!last && sep != '-')) return std::nullopt;
    if (i == 0)
      reply.code = code;
    else if (code != reply.code)
      return std::nullopt;
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
    if (auto ec = parse_enhanced(text); ec && ec->cls == code / 100) {
      if (i == 0) reply.status = *ec;
    }
    if (i) reply.text += '\n';
    reply.text += text;
  }
  return reply;
}

}  // namespace wsmtp::common::smtp
