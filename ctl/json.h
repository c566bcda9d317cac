// Minimal JSON string quoting for --json output (RFC 8259 §7): enough for the
// flat objects wsmtpctl prints, without pulling in a JSON library.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace wsmtp::ctl {

inline std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace wsmtp::ctl
