// The message content as it is stored, whatever carried it (DATA or BDAT): one
// line-ending convention, the text line limit, and what the header section says
// (Received: hops, Message-ID:, Date:). Pure: bytes in, bytes appended to the
// caller's buffer; knows nothing of dot-stuffing, chunks or the store.
//
// Policy (the SMTP smuggling class, CVE-2023-51764 and relatives): every line of
// the stored body ends in CRLF. A bare CR or a bare LF from the client is stored
// as CRLF, so the stored body contains CR and LF only as CRLF pairs and no relay
// that later copies it can be made to see a line, or an end of data, that this
// listener did not see. Line length: RFC 5321 §4.5.3.1.6 allows 1000 octets per
// text line including CRLF; a longer line makes the whole message refused (never
// folded or truncated, which would break signatures). The limit is configurable
// (max_line_length) for sites that must accept broken mailers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wsmtp::listener {

class BodyFilter {
 public:
  // max_line counts the CRLF, like RFC 5321.
  explicit BodyFilter(std::size_t max_line = 1000) : max_line_(max_line) {}

  // Starts a new message: forget all state.
  void reset(std::size_t max_line);
  // Content of the current line: no LF, and no CR that is part of a CRLF. Any CR
  // in it is bare and becomes a line end. Appends the stored form to out.
  void content(std::string_view bytes, std::string& out);
  // The current line ended (CRLF or bare LF): appends CRLF to out.
  void line_end(std::string& out);
  // Called once at the end of the message: terminates an unterminated last line
  // (BDAT needs no final CRLF) and closes a header section that never ended.
  void finish(std::string& out);

  // Headers to add at the end of the header section (e.g. a missing Message-ID:),
  // complete lines with CRLF; built by the caller from what has been seen so far.
  // Called when the empty line that ends the header section arrives.
  using HeaderHook = std::string (*)(const BodyFilter&, void* context);
  void on_end_of_headers(HeaderHook hook, void* context) {
    hook_ = hook;
    hook_context_ = context;
  }

  bool line_too_long() const { return line_too_long_; }
  int received_headers() const { return received_; }
  bool has_message_id() const { return has_message_id_; }
  bool has_date() const { return has_date_; }
  bool in_headers() const { return in_headers_; }

 private:
  void segment(std::string_view bytes, std::string& out);
  void end_headers(std::string& out);

  std::size_t max_line_;
  std::size_t line_length_ = 0;
  std::string line_head_;  // the first few bytes of a header line, to name the field
  bool in_headers_ = true;
  bool line_too_long_ = false;
  int received_ = 0;
  bool has_message_id_ = false;
  bool has_date_ = false;
  HeaderHook hook_ = nullptr;
  void* hook_context_ = nullptr;
};

}  // namespace wsmtp::listener
