// What the milters' end-of-message changes do to a message, as pure
// functions over its header section and envelope: the session applies them
// before the message is stored, so the stored (and delivered) message is the
// changed one. Semantics are libmilter's (smfi_addheader, smfi_insheader,
// smfi_chgheader, smfi_chgfrom, smfi_addrcpt, smfi_delrcpt).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "milter/protocol.h"

namespace wsmtp::listener::milter {

// A message's header section, field by field, CRLF line ends throughout (as
// stored: body_filter.h).
class HeaderSection {
 public:
  struct Field {
    std::string name;  // as written, without the colon
    std::string text;  // the whole field, name and folds included, ending in CRLF
    // What milters are sent as the value: everything after the colon, without
    // the final CRLF (folds stay CRLF + blank; the chain makes them "\n").
    std::string_view value() const;
  };

  // header: the section's bytes, ending with the empty line when it has one.
  static HeaderSection parse(std::string_view header);

  // add_header, insert_header or change_header (anything else: invalid_argument).
  void apply(const Reply& change);
  // The section as bytes, with its empty line if it had one.
  std::string str() const;
  const std::vector<Field>& fields() const { return fields_; }

 private:
  std::vector<Field> fields_;
  bool ends_with_blank_line_ = false;
};

// A field as a milter asked for it: "Name: value" with its "\n" folds as CRLF.
std::string make_field(std::string_view name, std::string_view value);

// "<a@b>" -> "a@b"; "<>" -> "" (the null sender); without brackets as is.
std::string bare_address(std::string_view address);

// change_from, add_rcpt, add_rcpt_with_args or delete_rcpt on an envelope.
// delete_rcpt removes every recipient equal to the address, ignoring ASCII
// case (libmilter matches the address as the client gave it).
void apply_envelope_change(const Reply& change, std::string& sender, std::vector<std::string>& recipients);

// A replacement body as stored: every line end CRLF (a bare CR or LF becomes
// CRLF), so a milter cannot put into the queue what the listener would refuse
// from a client (body_filter.h).
std::string normalize_line_ends(std::string_view body);

}  // namespace wsmtp::listener::milter
