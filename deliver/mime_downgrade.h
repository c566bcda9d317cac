// 8-bit to 7-bit conversion for relays without 8BITMIME (RFC 6152 §3): the
// MIME parts whose bodies carry 8-bit bytes are re-encoded as quoted-printable
// (RFC 2045 §6.7), with their Content-Transfer-Encoding rewritten; multipart
// bodies (RFC 2046 §5.1) and encapsulated messages (message/rfc822, §5.2.1) are
// walked, every other part is passed on byte for byte. As Postfix does, every
// media type is converted to quoted-printable, never base64: the result stays
// readable, and line-oriented 8bit content round-trips exactly.
//
// Two passes over the same bytes, both streaming with memory bounded by the
// limits below: DowngradeScanner finds which parts need conversion (a part's
// header is written before its body shows whether it has 8-bit bytes), and
// DowngradeEncoder writes the converted message. 8-bit bytes in header fields
// cannot be converted (that takes SMTPUTF8, RFC 6531) and make the plan
// unconvertible, as do 8-bit bytes where no encoding can be declared; the
// caller then refuses the message clearly. Malformed MIME (no boundary,
// unterminated parts, absurd nesting, endless lines or headers) never fails:
// it is passed on as opaque content. Pure: no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wsmtp::common::mail {

struct DowngradeLimits {
  std::size_t max_depth = 32;                // nested entities deeper than this are opaque
  std::size_t max_entities = 10000;          // MIME entities walked; later ones are opaque
  std::size_t max_header_bytes = 64 * 1024;  // one entity's header section; larger is opaque
};

struct DowngradePlan {
  bool has_8bit = false;             // some byte >= 0x80 anywhere
  bool unconvertible = false;        // 8-bit bytes that no Content-Transfer-Encoding can carry
  bool header_8bit = false;          // among them: in header fields (only SMTPUTF8, RFC 6531, carries those)
  std::string problem;               // why unconvertible (the first reason), for the refusal text
  std::vector<std::size_t> convert;  // the entities (numbered in order of appearance) to encode
  std::uint64_t input_size = 0;
  std::uint64_t converted_size = 0;  // the size DowngradeEncoder produces (for SIZE=)
};

class MimeWalker;

// Pass 1: feed the message (wire form, any chunking), then finish().
class DowngradeScanner {
 public:
  explicit DowngradeScanner(const DowngradeLimits& limits = {});
  ~DowngradeScanner();
  DowngradeScanner(const DowngradeScanner&) = delete;
  DowngradeScanner& operator=(const DowngradeScanner&) = delete;

  void feed(std::string_view chunk);
  DowngradePlan finish();

 private:
  std::unique_ptr<MimeWalker> walker_;
};

// Pass 2: the same bytes again, written out converted per the plan (which must
// come from a scan of exactly these bytes with the same limits).
class DowngradeEncoder {
 public:
  explicit DowngradeEncoder(const DowngradePlan& plan, const DowngradeLimits& limits = {});
  ~DowngradeEncoder();
  DowngradeEncoder(const DowngradeEncoder&) = delete;
  DowngradeEncoder& operator=(const DowngradeEncoder&) = delete;

  void feed(std::string_view chunk, std::string& out);
  void finish(std::string& out);

 private:
  std::unique_ptr<MimeWalker> walker_;
};

// Both passes over a message held in memory. Returns the plan; `out` gets the
// converted message when the plan is convertible (else it is left empty).
DowngradePlan downgrade_to_7bit(std::string_view message, std::string& out, const DowngradeLimits& limits = {});

// Quoted-printable encoding of one line's bytes (RFC 2045 §6.7): output lines of
// at most 76 characters joined by soft line breaks; `line_end` ends the line with
// CRLF. Whitespace at the end of a piece is encoded, and a '-' that would start
// a continuation line too, so no output line can look like a MIME boundary.
class QpEncoder {
 public:
  void encode(std::string_view piece, bool line_end, std::string& out);
  // What encode() would append, without writing it (the state advances the same).
  std::size_t measure(std::string_view piece, bool line_end);

 private:
  std::size_t column_ = 0;
  bool continuation_ = false;
};

}  // namespace wsmtp::common::mail
