#include "dot_stuff.h"

#include "ascii.h"

namespace wsmtp::common::smtp {

void DotStuffer::feed(std::string_view in, std::string& out) {
  for (char ch : in) {
    if (pending_cr_) {
      pending_cr_ = false;
      out += "\r\n";
      at_line_start_ = true;
      if (ch == '\n') continue;  // that was a proper CRLF
    }
    if (ch == '\r') {
      pending_cr_ = true;
      continue;
    }
    if (ch == '\n') {  // bare LF
      out += "\r\n";
      at_line_start_ = true;
      continue;
    }
    if (at_line_start_ && ch == '.') out += '.';
    at_line_start_ = false;
    out += ch;
  }
}

void DotStuffer::finish(std::string& out) {
  if (pending_cr_ || !at_line_start_) out += "\r\n";
  pending_cr_ = false;
  at_line_start_ = true;
  out += ".\r\n";
}

bool has_8bit(std::string_view bytes) { return !is_ascii(bytes); }

}  // namespace wsmtp::common::smtp
