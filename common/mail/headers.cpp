#include "mail/headers.h"

#include <algorithm>
#include <cctype>

namespace wsmtp::common::mail {
namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// RFC 5322 §3.6.8 ftext: printable US-ASCII except colon.
bool valid_field_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 33 && u <= 126 && c != ':';
  });
}

bool is_atext_or_dot(char c) {
  auto u = static_cast<unsigned char>(c);
  if (std::isalnum(u) || u >= 0x80) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) != std::string_view::npos;
}

bool is_domain_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || u >= 0x80 || c == '-' || c == '.' || c == '_';
}

}  // namespace

HeaderBlock HeaderBlock::parse(std::string_view text, const HeaderLimits& limits) {
  HeaderBlock block;
  if (text.size() > limits.max_bytes) text = text.substr(0, limits.max_bytes);
  HeaderField* current = nullptr;  // the field a continuation line belongs to
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    // A last line without its line end may be cut by the limit: not a field we
    // can trust.
    if (eol == std::string_view::npos) break;
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      block.complete_ = true;
      break;
    }
    if (is_wsp(line.front())) {
      // RFC 5322 §2.2.3: unfolding removes the CRLF and keeps the whitespace.
      if (current) current->value.append(line);
      continue;
    }
    auto colon = line.find(':');
    std::string_view name = colon == std::string_view::npos ? std::string_view() : line.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);  // obsolete "Name :" (§4.5)
    if (!valid_field_name(name)) {
      current = nullptr;  // garbage line: skip it and any continuation of it
      continue;
    }
    if (block.fields_.size() >= limits.max_fields) break;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && is_wsp(value.front())) value.remove_prefix(1);
    block.fields_.push_back({std::string(name), std::string(value)});
    current = &block.fields_.back();
  }
  for (auto& f : block.fields_) f.value = std::string(trim(f.value));
  return block;
}

std::optional<std::string_view> HeaderBlock::first(std::string_view name) const {
  for (const auto& f : fields_)
    if (iequals(f.name, name)) return std::string_view(f.value);
  return std::nullopt;
}

std::vector<std::string_view> HeaderBlock::all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& f : fields_)
    if (iequals(f.name, name)) out.emplace_back(f.value);
  return out;
}

bool HeaderBlock::has_prefix(std::string_view prefix) const {
  return std::any_of(fields_.begin(), fields_.end(), [prefix](const HeaderField& f) {
    return f.name.size() >= prefix.size() && iequals(std::string_view(f.name).substr(0, prefix.size()), prefix);
  });
}

bool HeaderCollector::feed(std::string_view chunk) {
  if (done_) return true;
  // Look for the end of the section only in the new part (plus 3 bytes of
  // overlap for a CRLFCRLF split across chunks), so feeding stays linear.
  std::size_t from = buffer_.size() > 3 ? buffer_.size() - 3 : 0;
  std::size_t room = limits_.max_bytes - buffer_.size();
  buffer_.append(chunk.substr(0, room));
  auto window = std::string_view(buffer_).substr(from);
  bool blank = window.find("\n\n") != std::string_view::npos || window.find("\n\r\n") != std::string_view::npos;
  // A message that starts with the empty line has no header section at all.
  if (buffer_.rfind("\r\n", 0) == 0 || buffer_.rfind("\n", 0) == 0) blank = true;
  done_ = blank || buffer_.size() >= limits_.max_bytes;
  return done_;
}

bool mentions_address(std::string_view value, std::string_view address) {
  if (address.empty() || value.size() < address.size()) return false;
  std::string lowered = to_lower_ascii(value);
  for (std::size_t at = lowered.find(address); at != std::string::npos; at = lowered.find(address, at + 1)) {
    bool start_ok = at == 0 || !is_atext_or_dot(lowered[at - 1]);
    std::size_t end = at + address.size();
    bool end_ok = end == lowered.size() || !is_domain_char(lowered[end]);
    if (start_ok && end_ok) return true;
  }
  return false;
}

std::string first_angle_token(std::string_view value) {
  auto open = value.find('<');
  if (open == std::string_view::npos) return "";
  auto close = value.find('>', open);
  if (close == std::string_view::npos) return "";
  return std::string(value.substr(open, close - open + 1));
}

}  // namespace wsmtp::common::mail
