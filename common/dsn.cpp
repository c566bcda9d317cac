#include "dsn.h"

#include <algorithm>

#include <fmt/format.h>
#include <openssl/rand.h>

#include "log.h"
#include "mail/date.h"

namespace wsmtp::common::dsn {
namespace {

constexpr std::size_t kMaxFieldLength = 900;  // RFC 5322 §2.1.1: lines stay under 998

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "d.ddd.ddd" at the start of text (RFC 3463 §2), or empty.
std::string leading_enhanced_code(std::string_view text) {
  std::size_t i = 0;
  if (text.empty() || (text[0] != '2' && text[0] != '4' && text[0] != '5')) return {};
  i = 1;
  for (int part = 0; part < 2; ++part) {
    if (i >= text.size() || text[i] != '.') return {};
    std::size_t start = ++i;
    while (i < text.size() && is_digit(text[i]) && i - start < 3) ++i;
    if (i == start) return {};
  }
  if (i < text.size() && text[i] != ' ') return {};
  return std::string(text.substr(0, i));
}

bool starts_with_reply_code(std::string_view d) {
  return d.size() >= 4 && is_digit(d[0]) && is_digit(d[1]) && is_digit(d[2]) && (d[3] == ' ' || d[3] == '-');
}

// A DSN is 7-bit text with short lines: control characters and 8-bit bytes in
// remote replies or local errors become '?', and overlong text is cut.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : (c == '\n' || c == '\t' ? ' ' : '?');
    if (out.size() >= kMaxFieldLength) break;
  }
  return out;
}

// Any line ends to CRLF, 8-bit bytes to '?' (the report is declared 7-bit; an
// 8-bit header would need RFC 6533's message/global-headers instead).
std::string crlf_7bit(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
      out += "\r\n";
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += static_cast<unsigned char>(c) < 0x80 ? c : '?';
    }
  }
  if (!out.empty() && out.back() != '\n') out += "\r\n";
  return out;
}

std::string human_part(const Report& r) {
  std::string out;
  if (r.action == Action::failed) {
    out += fmt::format("This is the mail system at host {}.\r\n\r\n", r.reporting_mta);
    out += "Your message could not be delivered to one or more recipients.\r\n";
    out += "It has been given up on; the reasons are below.\r\n\r\n";
  } else {
    out += fmt::format("This is the mail system at host {}.\r\n\r\n", r.reporting_mta);
    out += "Your message has not been delivered yet to the recipients below.\r\n";
    out += "Delivery will be retried; you do not need to resend it.\r\n\r\n";
  }
  for (const auto& rcpt : r.recipients)
    out += fmt::format("<{}>: {}\r\n", printable(rcpt.final_recipient), printable(rcpt.detail));
  return out;
}

std::string status_part(const Report& r) {
  // RFC 3464 §2.2 per-message fields, then one §2.3 block per recipient.
  std::string out = fmt::format("Reporting-MTA: dns; {}\r\nX-WSMTP-Queue-ID: {}\r\nArrival-Date: {}\r\n",
                                r.reporting_mta, r.msg_id, mail::rfc5322_date(r.arrival));
  for (const auto& rcpt : r.recipients) {
    out += "\r\n";
    if (!rcpt.original_recipient.empty() && rcpt.original_recipient != rcpt.final_recipient)
      out += fmt::format("Original-Recipient: rfc822; {}\r\n", printable(rcpt.original_recipient));
    out += fmt::format("Final-Recipient: rfc822; {}\r\n", printable(rcpt.final_recipient));
    out += fmt::format("Action: {}\r\n", r.action == Action::failed ? "failed" : "delayed");
    out += fmt::format("Status: {}\r\n", status_of(rcpt.detail, r.action));
    if (starts_with_reply_code(rcpt.detail))
      out += fmt::format("Diagnostic-Code: smtp; {}\r\n", printable(rcpt.detail));
    else if (!rcpt.detail.empty())
      out += fmt::format("Diagnostic-Code: x-wsmtp; {}\r\n", printable(rcpt.detail));
    if (rcpt.last_attempt != 0) out += fmt::format("Last-Attempt-Date: {}\r\n", mail::rfc5322_date(rcpt.last_attempt));
  }
  return out;
}

}  // namespace

std::string status_of(std::string_view detail, Action action) {
  std::string_view rest = detail;
  const bool reply = starts_with_reply_code(detail);
  if (reply) rest.remove_prefix(4);
  // A report is about a failure or a delay: a success class (or any class but
  // 4 and 5 from a reply code) would be a wrong Status, and an enhanced code
  // must agree with its reply code's class (RFC 3463 §2, as parse_reply reads
  // it); a remote server that gets this wrong does not decide our report.
  auto code = leading_enhanced_code(rest);
  if (!code.empty() && code[0] != '2' && (!reply || code[0] == detail[0])) return code;
  if (reply && (detail[0] == '4' || detail[0] == '5')) return fmt::format("{}.0.0", detail[0]);
  return action == Action::failed ? "5.0.0" : "4.0.0";
}

std::string header_section(std::string_view message, std::size_t max_bytes) {
  // The header section ends at the first empty line (RFC 5322 §2.1), LF or CRLF.
  std::size_t end = message.size();
  auto lf = message.find("\n\n");
  auto crlf = message.find("\n\r\n");
  auto first = std::min(lf, crlf);
  if (first != std::string_view::npos) end = first + 1;
  if (end > max_bytes) {
    // The line end must lie within the cap, not just after it.
    auto cut = max_bytes == 0 ? std::string_view::npos : message.rfind('\n', max_bytes - 1);
    end = cut == std::string_view::npos ? 0 : cut + 1;
  }
  return std::string(message.substr(0, end));
}

std::string random_boundary() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) log::fatal("RAND_bytes failed: no CSPRNG for a MIME boundary");
  std::string boundary = "=_";
  for (unsigned char b : bytes) boundary += fmt::format("{:02x}", b);
  return boundary;
}

std::string compose(const Report& r) { return compose(r, random_boundary); }

std::string compose(const Report& r, const std::function<std::string()>& make_boundary) {
  const bool failed = r.action == Action::failed;
  const std::string human = human_part(r);
  const std::string status = status_part(r);
  const std::string original = crlf_7bit(r.original_headers);
  // RFC 2046 §5.1.1: the boundary must not appear in the encapsulated parts.
  std::string boundary = make_boundary();
  while (human.find(boundary) != std::string::npos || status.find(boundary) != std::string::npos ||
         original.find(boundary) != std::string::npos)
    boundary = make_boundary();
  std::string out;
  out += fmt::format("From: Mail Delivery System <MAILER-DAEMON@{}>\r\n", r.reporting_mta);
  out += fmt::format("To: <{}>\r\n", printable(r.recipient));
  out += fmt::format("Subject: {}\r\n",
                     failed ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)");
  out += fmt::format("Date: {}\r\n", mail::rfc5322_date(r.now));
  out += fmt::format("Message-ID: <{}.{}.{}@{}>\r\n", failed ? "dsn" : "delay", r.msg_id, r.now, r.reporting_mta);
  // RFC 3834 §5: marks the report as automatic so responders do not answer it.
  out += "Auto-Submitted: auto-replied\r\n";
  out += "MIME-Version: 1.0\r\n";
  out += fmt::format("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{}\"\r\n", boundary);
  out += "Content-Transfer-Encoding: 7bit\r\n\r\n";
  out += "This is a MIME-encapsulated message.\r\n\r\n";
  out += fmt::format(
      "--{}\r\nContent-Type: text/plain; charset=us-ascii\r\n"
      "Content-Description: Notification\r\n\r\n",
      boundary);
  out += human;
  out += fmt::format(
      "\r\n--{}\r\nContent-Type: message/delivery-status\r\n"
      "Content-Description: Delivery report\r\n\r\n",
      boundary);
  out += status;
  out += fmt::format(
      "\r\n--{}\r\nContent-Type: text/rfc822-headers\r\n"
      "Content-Description: Undelivered Message Headers\r\n\r\n",
      boundary);
  out += original;
  out += fmt::format("\r\n--{}--\r\n", boundary);
  return out;
}

}  // namespace wsmtp::common::dsn
