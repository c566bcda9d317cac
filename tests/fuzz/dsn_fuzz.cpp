// libFuzzer target for Delivery Status Notifications (common/dsn.cpp). WSMTP
// does not parse incoming DSNs; what it parses is remote text that goes into
// the ones it writes: the Status taken from a remote reply (status_of), the
// original header section (header_section), and the reply text, recipient and
// headers copied into the report (compose). The report must stay a well-formed
// 7-bit message with CRLF line ends, an RFC 3463 status of the report's class,
// and a MIME structure nothing copied into it can break.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dsn.h"
#include "mail/headers.h"

namespace {

using namespace wsmtp::common;

// A broken property is a crash, named by its line for the reproducer's reader.
void check(bool ok, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "property failed: %s:%d\n", file, line);
  std::abort();
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// class "." 1*3digit "." 1*3digit (RFC 3463 §2)
bool is_status(std::string_view s) {
  if (s.size() < 5 || (s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  std::size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    std::size_t start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == start || i - start > 3) return false;
    if (part == 0 && (i == s.size() || s[i++] != '.')) return false;
  }
  return i == s.size();
}

// Splits the input at NUL bytes into the remote-controlled fields.
std::vector<std::string> fields_of(std::string_view bytes, std::size_t n) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (out.size() + 1 < n) {
    auto nul = bytes.find('\0', pos);
    if (nul == std::string_view::npos) break;
    out.emplace_back(bytes.substr(pos, nul - pos));
    pos = nul + 1;
  }
  out.emplace_back(bytes.substr(std::min(pos, bytes.size())));
  out.resize(n);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);

  for (auto action : {dsn::Action::failed, dsn::Action::delayed}) {
    auto status = dsn::status_of(bytes, action);
    check(is_status(status));
  }

  for (std::size_t max : {std::size_t(64 * 1024), 1 + size / 3}) {
    auto section = dsn::header_section(bytes, max);
    check(section.size() <= max && bytes.substr(0, section.size()) == section);
    check(section.find("\n\n") == std::string::npos && section.find("\n\r\n") == std::string::npos);
    check(section.size() == bytes.size() || section.empty() || section.back() == '\n');
  }

  // detail, final recipient, original recipient, envelope sender, message.
  auto f = fields_of(bytes, 5);
  dsn::Report report;
  report.action = size % 2 ? dsn::Action::failed : dsn::Action::delayed;
  report.reporting_mta = "mx.example.org";
  report.recipient = f[3];
  report.msg_id = 42;
  report.arrival = 1700000000;
  report.now = 1700003600;
  report.recipients.push_back({f[1], f[2], f[0], size % 3 ? 1700003000 : 0});
  report.recipients.push_back({"bob@example.org", "", "550 5.1.1 no such user", 1700003000});
  report.original_headers = dsn::header_section(f[4]);
  const std::string m = dsn::compose(report);

  for (std::size_t i = 0; i < m.size(); ++i) {
    check(static_cast<unsigned char>(m[i]) < 0x80);
    if (m[i] == '\r') check(i + 1 < m.size() && m[i + 1] == '\n');
    if (m[i] == '\n') check(i > 0 && m[i - 1] == '\r');
  }
  auto headers = mail::HeaderBlock::parse(m);
  check(headers.complete() && headers.fields().size() == 9);
  // The parts: "--" boundary lines exactly where compose puts them, none from
  // the copied headers (which the fuzzer may fill with the default boundary).
  auto type = std::string(headers.first("Content-Type").value_or(""));
  auto quote = type.find("boundary=\"");
  check(quote != std::string::npos && type.back() == '"');
  const std::string delimiter = "\r\n--" + type.substr(quote + 10, type.size() - quote - 11);
  std::vector<std::size_t> delimiters;
  for (auto at = m.find(delimiter); at != std::string::npos; at = m.find(delimiter, at + 1)) delimiters.push_back(at);
  check(delimiters.size() == 4);
  // One Status field per recipient in the delivery-status part, each of the
  // report's class.
  auto status_part = std::string_view(m).substr(delimiters[1], delimiters[2] - delimiters[1]);
  std::size_t statuses = 0;
  for (auto at = status_part.find("\r\nStatus: "); at != std::string::npos;
       at = status_part.find("\r\nStatus: ", at + 1)) {
    auto start = at + 10;
    check(is_status(status_part.substr(start, status_part.find("\r\n", start) - start)));
    ++statuses;
  }
  check(statuses == 2);
  return 0;
}
