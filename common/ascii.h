// ASCII-only character helpers for protocol text: SMTP verbs and keywords, header
// field names, units, domains. Case is folded for A-Z/a-z only, never by the
// process locale, and bytes >= 0x80 (UTF-8) pass through unchanged. Pure: no I/O.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace wsmtp::common {

constexpr char to_lower_ascii(char ch) { return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch; }
constexpr char to_upper_ascii(char ch) { return ch >= 'a' && ch <= 'z' ? static_cast<char>(ch - 'a' + 'A') : ch; }

// A copy with A-Z lowered ("Bob@Example.ORG" -> "bob@example.org").
inline std::string to_lower_ascii(std::string_view text) {
  std::string out(text);
  for (auto& ch : out) ch = to_lower_ascii(ch);
  return out;
}

// A copy with a-z raised ("ehlo" -> "EHLO").
inline std::string to_upper_ascii(std::string_view text) {
  std::string out(text);
  for (auto& ch : out) ch = to_upper_ascii(ch);
  return out;
}

// Equal but for the case of ASCII letters ("List-Id" and "list-id").
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (to_lower_ascii(a[i]) != to_lower_ascii(b[i])) return false;
  return true;
}

// text begins with prefix, ignoring the case of ASCII letters ("mail from:" and "MAIL FROM:").
constexpr bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

// No byte >= 0x80 (so no UTF-8 beyond ASCII, no 8-bit data).
constexpr bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x80; });
}

// Without leading and trailing blanks: spaces and tabs (RFC 5234 WSP).
constexpr std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Without leading and trailing spaces, tabs, CRs and LFs (a header value with its line end).
constexpr std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  while (!text.empty() && kSpace.find(text.front()) != std::string_view::npos) text.remove_prefix(1);
  while (!text.empty() && kSpace.find(text.back()) != std::string_view::npos) text.remove_suffix(1);
  return text;
}

}  // namespace wsmtp::common
