// An SMTP reply as a value: code, enhanced status (RFC 3463) and text. Used both
// for what the listener sends and for what the relay client reads back, so the
// defer-or-bounce decision uses the same predicates everywhere.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsmtp::common::smtp {

struct EnhancedCode {
  int cls = 0;  // 2, 4 or 5; 0 means "none" (e.g. the greeting)
  int subject = 0;
  int detail = 0;
  bool present() const { return cls != 0; }
  std::string str() const;
  friend bool operator==(const EnhancedCode&, const EnhancedCode&) = default;
};

struct Reply {
  int code = 0;
  EnhancedCode status;
  std::string text;  // may hold several lines separated by '\n' (multi-line reply)

  bool is_positive() const { return code >= 200 && code < 400; }
  bool is_transient() const { return code >= 400 && code < 500; }
  bool is_permanent() const { return code >= 500; }

  // Wire form, CRLF-terminated; a multi-line text becomes "250-a\r\n250 b\r\n"
  // (RFC 5321 §4.2.1), each line carrying the enhanced code when present.
  std::string wire() const;
};

// Parses one complete (possibly multi-line) reply from the lines a server sent,
// without their CRLF. Returns nullopt if the lines are not a well-formed reply.
std::optional<Reply> parse_reply(const std::vector<std::string>& lines);

}  // namespace wsmtp::common::smtp
