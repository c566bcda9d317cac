#include "printable.h"

#include <cstddef>
#include <cstdint>

#include <fmt/format.h>

namespace wsmtp::common {
namespace {

// Length of the valid UTF-8 sequence at text[i] (RFC 3629 §4: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 if there is none.
std::size_t utf8_length(std::string_view text, std::size_t i, std::uint32_t& code_point) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char lead = byte(0);
  std::size_t length = 0;
  std::uint32_t min = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2, min = 0x80, code_point = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3, min = 0x800, code_point = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4, min = 0x10000, code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(k) & 0xc0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(k) & 0x3f);
  }
  if (code_point < min || code_point > 0x10ffff || (code_point >= 0xd800 && code_point <= 0xdfff)) return 0;
  return length;
}

void append_escaped(std::string& out, std::string_view bytes) {
  for (unsigned char c : bytes) out += fmt::format("\\x{:02x}", c);
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x80) {
      append_escaped(out, text.substr(i, 1));
      ++i;
    } else {
      std::uint32_t code_point = 0;
      const std::size_t length = utf8_length(text, i, code_point);
      if (length == 0) {
        append_escaped(out, text.substr(i, 1));
        ++i;
        continue;
      }
      // C1 controls: a terminal may take U+009B as CSI.
      if (code_point <= 0x9f)
        append_escaped(out, text.substr(i, length));
      else
        out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

}  // namespace wsmtp::common
