// RFC 5322 §2.2 header sections: split into fields, unfold continuation lines,
// look fields up by name. Values are kept as written (RFC 2047 encoded words
// stay encoded: callers compare and copy them, never decode). Malformed input
// (bare LF, lines without a colon, stray continuations, NULs, no end) is
// tolerated, and every operation is linear in a bounded input. Pure: no I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ascii.h"

namespace wsmtp::common::mail {

struct HeaderField {
  std::string name;   // as written
  std::string value;  // unfolded (CRLF before whitespace removed), leading
                      // whitespace trimmed
};

struct HeaderLimits {
  std::size_t max_bytes = 256 * 1024;  // the rest of an oversized section is ignored
  std::size_t max_fields = 1000;
};

class HeaderBlock {
 public:
  // Parses the header section at the start of text, up to the first empty line
  // or the limits, whichever comes first.
  static HeaderBlock parse(std::string_view text, const HeaderLimits& limits = {});

  const std::vector<HeaderField>& fields() const { return fields_; }
  // True if the empty line ending the section was seen within the limits.
  bool complete() const { return complete_; }
  // First field named name (case-insensitive), if any.
  std::optional<std::string_view> first(std::string_view name) const;
  // Every field named name, in order.
  std::vector<std::string_view> all(std::string_view name) const;
  // True if some field's name starts with prefix (case-insensitive), e.g.
  // "List-".
  bool has_prefix(std::string_view prefix) const;

 private:
  std::vector<HeaderField> fields_;
  bool complete_ = false;
};

// Accumulates the start of a message that arrives in chunks until the header
// section is complete or limits.max_bytes is reached; keeps at most that much.
class HeaderCollector {
 public:
  explicit HeaderCollector(HeaderLimits limits = {}) : limits_(limits) {}
  // Returns true once no more input is needed.
  bool feed(std::string_view chunk);
  HeaderBlock block() const { return HeaderBlock::parse(buffer_, limits_); }

 private:
  HeaderLimits limits_;
  std::string buffer_;
  bool done_ = false;
};

// Header names compare with iequals, values are cut with trim (ascii.h).
using common::iequals;
using common::trim;

// True if address (lower-case local@domain) appears in a header value as a
// whole address: "Bob <bob@x.org>", "bob@x.org, c@y", case-insensitively.
bool mentions_address(std::string_view value, std::string_view address);

// The first "<...>" token of a value (Message-ID, In-Reply-To), brackets
// included, or "" if none.
std::string first_angle_token(std::string_view value);

}  // namespace wsmtp::common::mail
