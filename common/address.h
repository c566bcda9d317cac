// RFC 5321 §4.1.2 paths and mailboxes: parsing of the MAIL/RCPT argument, with
// the size limits of §4.5.3.1. Pure: no database, no sockets.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "ascii.h"  // to_lower_ascii, which callers of this header use on addresses

namespace wsmtp::common {

inline constexpr std::size_t kMaxLocalPart = 64;  // RFC 5321 §4.5.3.1.1
inline constexpr std::size_t kMaxDomain = 255;    // §4.5.3.1.2
inline constexpr std::size_t kMaxPath = 256;      // §4.5.3.1.3

struct Address {
  std::string local;   // as written; a quoted local part keeps its quotes
  std::string domain;  // as written; an address literal keeps its brackets

  std::string str() const { return local + "@" + domain; }
  // The form used to look the address up in the directory: lower-case, and a
  // quoted local part reduced to its content when that content is a plain atom.
  std::string lookup_key() const;
  bool is_address_literal() const { return !domain.empty() && domain.front() == '['; }
};

enum class PathError { none, syntax, too_long };

struct ParsedPath {
  PathError error = PathError::none;
  bool is_null = false;     // "<>"
  Address address;          // empty when is_null
  std::string_view params;  // what follows the closing '>', leading spaces removed
};

// Parses "<[@route,@route:]local@domain> [params]" or "<>" (when allow_null).
// allow_utf8 admits UTF-8 in local part and domain (RFC 6531, SMTPUTF8).
ParsedPath parse_path(std::string_view text, bool allow_null, bool allow_utf8);

// Parses a bare "local@domain" (no brackets), e.g. from configuration or the CLI.
std::optional<Address> parse_mailbox(std::string_view text, bool allow_utf8 = false);

// True if text is a syntactically valid domain name (RFC 5321 Domain, no literal).
bool is_valid_domain(std::string_view text, bool allow_utf8 = false);

// RFC 5321 §4.5.1: every domain we receive mail for has the reserved mailbox
// "postmaster" (case-insensitive), and "<Postmaster>" without a domain must be
// accepted too; the listener stores that one as kBarePostmaster. key is a lookup
// key (Address::lookup_key) or kBarePostmaster.
inline constexpr std::string_view kBarePostmaster = "postmaster";
inline bool is_postmaster_key(std::string_view key) {
  return key.substr(0, kBarePostmaster.size()) == kBarePostmaster &&
         (key.size() == kBarePostmaster.size() ||
          (key[kBarePostmaster.size()] == '@' && key.size() > kBarePostmaster.size() + 1));
}

}  // namespace wsmtp::common
