#include "autoreply.h"

#include <algorithm>

#include "address.h"
#include "ascii.h"
#include "mail/date.h"

namespace wsmtp::router {
namespace {

using common::mail::HeaderBlock;

// The first word of a header value, lower-cased: "no (comment)" -> "no".
std::string first_token(std::string_view value) {
  value = common::trim(value);
  auto end = value.find_first_of(" \t;(");
  return common::to_lower_ascii(value.substr(0, end));
}

bool starts_with(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// Keeps a copied header value on one line: unfolded values may not contain
// CR/LF, but a malformed original must not inject header lines into our reply.
std::string one_line(std::string_view value) {
  std::string out(value);
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  return out;
}

std::string crlf_text(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 40 + 2);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') continue;
    if (text[i] == '\n') {
      out += "\r\n";
      continue;
    }
    out += text[i];
  }
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
  return out;
}

}  // namespace

bool autoreply_sender_excluded(const std::string& sender) {
  if (sender.empty()) return true;  // the null sender: a bounce or another automaton
  auto at = sender.rfind('@');
  const std::string local = common::to_lower_ascii(at == std::string::npos ? sender : sender.substr(0, at));
  return local == "mailer-daemon" || starts_with(local, "owner-") || ends_with(local, "-request");
}

bool autoreply_message_excluded(const HeaderBlock& headers) {
  for (auto v : headers.all("Auto-Submitted"))
    if (first_token(v) != "no") return true;
  for (auto v : headers.all("Precedence")) {
    auto p = first_token(v);
    if (p == "bulk" || p == "list" || p == "junk") return true;
  }
  return headers.has_prefix("List-") || headers.first("X-Loop").has_value();
}

bool autoreply_direct_recipient(const HeaderBlock& headers, const std::string& mailbox,
                                const std::string& original_rcpt) {
  for (const char* name : {"To", "Cc"})
    for (auto v : headers.all(name))
      if (common::mail::mentions_address(v, mailbox) ||
          common::mail::mentions_address(v, common::to_lower_ascii(original_rcpt)))
        return true;
  return false;
}

std::string compose_autoreply(const AutoReplyMessage& r, const HeaderBlock& original) {
  std::string subject = r.subject;
  if (subject.empty()) subject = "Auto: " + one_line(original.first("Subject").value_or(""));
  const std::string orig_id = common::mail::first_angle_token(original.first("Message-ID").value_or(""));
  std::string m;
  m += "From: <" + r.from + ">\r\n";
  m += "To: <" + r.to + ">\r\n";
  m += "Subject: " + one_line(subject) + "\r\n";
  m += "Date: " + common::mail::rfc5322_date(r.now) + "\r\n";
  m += "Message-ID: <" + r.message_id + "@" + r.hostname + ">\r\n";
  if (!orig_id.empty()) {
    // RFC 3834 §3.1.5: In-Reply-To the original, References its references plus
    // it.
    m += "In-Reply-To: " + one_line(orig_id) + "\r\n";
    auto refs = original.first("References");
    m += "References: " + (refs ? one_line(*refs) + " " : std::string()) + one_line(orig_id) + "\r\n";
  }
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834 §5
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  m += crlf_text(r.text);
  return m;
}

}  // namespace wsmtp::router
