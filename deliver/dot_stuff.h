// The DATA encoding on the way out (RFC 5321 §4.5.2): every line ends in CRLF —
// a bare CR or bare LF in the stored message becomes CRLF, so no downstream
// server can read "<LF>.<LF>" or similar as the end of the message (SMTP
// smuggling) — and a line starting with '.' gets one more. finish() ends the
// last line and appends the terminating ".\r\n". Pure, chunk by chunk.
#pragma once

#include <string>
#include <string_view>

namespace wsmtp::common::smtp {

class DotStuffer {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  bool at_line_start_ = true;
  bool pending_cr_ = false;
};

// True if any byte has the high bit set (the message needs 8BITMIME).
bool has_8bit(std::string_view bytes);

}  // namespace wsmtp::common::smtp
