// A hand-written recursive-descent parser for the RFC 5321 grammar (§4.1.2). It
// looks at each byte once and never allocates more than the result.
#include "address.h"

#include <arpa/inet.h>

#include <algorithm>

namespace wsmtp::common {
namespace {

bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_let_dig(unsigned char c, bool utf8) { return is_alpha(c) || is_digit(c) || (utf8 && c >= 0x80); }

// atext of RFC 5322 §3.2.3
bool is_atext(unsigned char c, bool utf8) {
  if (is_alpha(c) || is_digit(c)) return true;
  if (utf8 && c >= 0x80) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool at_end() const { return pos_ >= s_.size(); }
  unsigned char peek() const { return at_end() ? 0 : static_cast<unsigned char>(s_[pos_]); }
  bool eat(char c) {
    if (!at_end() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  std::size_t pos() const { return pos_; }
  void advance() { ++pos_; }
  std::string_view slice(std::size_t from) const { return s_.substr(from, pos_ - from); }
  std::string_view rest() const { return s_.substr(std::min(pos_, s_.size())); }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

// sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]
bool parse_domain_name(Cursor& c, bool utf8) {
  do {
    if (!is_let_dig(c.peek(), utf8)) return false;
    std::size_t start = c.pos();
    while (is_let_dig(c.peek(), utf8) || c.peek() == '-') c.advance();
    auto label = c.slice(start);
    if (label.back() == '-' || label.size() > 63) return false;
  } while (c.eat('.'));
  return true;
}

bool valid_ipv4(std::string_view text) {
  std::string s(text);
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool valid_ipv6(std::string_view text) {
  std::string s(text);
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

// address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General-address-literal ) "]"
bool parse_address_literal(Cursor& c) {
  if (!c.eat('[')) return false;
  std::size_t start = c.pos();
  while (!c.at_end() && c.peek() != ']' && c.peek() > 32 && c.peek() < 127 && c.peek() != '[' && c.peek() != '\\')
    c.advance();
  auto inner = c.slice(start);
  if (!c.eat(']')) return false;
  if (inner.size() > 5 && to_lower_ascii(inner.substr(0, 5)) == "ipv6:") return valid_ipv6(inner.substr(5));
  if (valid_ipv4(inner)) return true;
  // General-address-literal: Standardized-tag ":" 1*dcontent. We accept the syntax;
  // nothing routes to such a literal.
  auto colon = inner.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == inner.size()) return false;
  return std::all_of(inner.begin(), inner.begin() + colon,
                     [](char ch) { return is_let_dig(static_cast<unsigned char>(ch), false) || ch == '-'; });
}

// Local-part = Dot-string / Quoted-string
bool parse_local_part(Cursor& c, bool utf8) {
  if (c.eat('"')) {
    while (!c.at_end() && c.peek() != '"') {
      unsigned char ch = c.peek();
      if (ch == '\\') {
        c.advance();
        if (c.at_end() || c.peek() < 32 || c.peek() > 126) return false;
        c.advance();
      } else if ((ch >= 32 && ch <= 126) || (utf8 && ch >= 0x80)) {
        c.advance();
      } else {
        return false;
      }
    }
    return c.eat('"');
  }
  do {
    if (!is_atext(c.peek(), utf8)) return false;
    while (is_atext(c.peek(), utf8)) c.advance();
  } while (c.eat('.'));
  return true;
}

bool parse_mailbox_at(Cursor& c, Address& out, bool utf8) {
  std::size_t start = c.pos();
  if (!parse_local_part(c, utf8)) return false;
  out.local = std::string(c.slice(start));
  if (!c.eat('@')) return false;
  start = c.pos();
  if (c.peek() == '[') {
    if (!parse_address_literal(c)) return false;
  } else if (!parse_domain_name(c, utf8)) {
    return false;
  }
  out.domain = std::string(c.slice(start));
  return true;
}

// A-d-l = At-domain *( "," At-domain ) ":" — accepted and ignored (RFC 5321 §4.1.2, C.)
bool skip_source_route(Cursor& c, bool utf8) {
  if (c.peek() != '@') return true;
  do {
    if (!c.eat('@')) return false;
    if (c.peek() == '[' ? !parse_address_literal(c) : !parse_domain_name(c, utf8)) return false;
  } while (c.eat(','));
  return c.eat(':');
}

}  // namespace

std::string Address::lookup_key() const {
  std::string l = local;
  if (l.size() >= 2 && l.front() == '"' && l.back() == '"') {
    std::string inner = l.substr(1, l.size() - 2);
    bool plain = !inner.empty() && std::all_of(inner.begin(), inner.end(), [](char ch) {
      return is_atext(static_cast<unsigned char>(ch), true) || ch == '.';
    });
    if (plain) l = inner;
  }
  return to_lower_ascii(l) + "@" + to_lower_ascii(domain);
}

ParsedPath parse_path(std::string_view text, bool allow_null, bool allow_utf8) {
  ParsedPath out;
  Cursor c(text);
  if (!c.eat('<')) {
    out.error = PathError::syntax;
    return out;
  }
  if (c.eat('>')) {
    out.is_null = true;
    if (!allow_null) out.error = PathError::syntax;
  } else {
    std::size_t start = c.pos();
    if (!skip_source_route(c, allow_utf8) || !parse_mailbox_at(c, out.address, allow_utf8) || !c.eat('>')) {
      out.error = PathError::syntax;
      return out;
    }
    if (c.pos() - start + 1 > kMaxPath || out.address.local.size() > kMaxLocalPart ||
        out.address.domain.size() > kMaxDomain) {
      out.error = PathError::too_long;
      return out;
    }
  }
  auto rest = c.rest();
  if (!rest.empty() && rest.front() != ' ') {
    out.error = PathError::syntax;
    return out;
  }
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  out.params = rest;
  return out;
}

std::optional<Address> parse_mailbox(std::string_view text, bool allow_utf8) {
  Cursor c(text);
  Address a;
  if (!parse_mailbox_at(c, a, allow_utf8) || !c.at_end()) return std::nullopt;
  if (a.local.size() > kMaxLocalPart || a.domain.size() > kMaxDomain) return std::nullopt;
  return a;
}

bool is_valid_domain(std::string_view text, bool allow_utf8) {
  Cursor c(text);
  return text.size() <= kMaxDomain && parse_domain_name(c, allow_utf8) && c.at_end();
}

}  // namespace wsmtp::common
