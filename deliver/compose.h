// Composing the message as a local mailbox stores it: the trace headers a local
// delivery adds (Return-Path, Delivered-To; RFC 5321 §4.4) followed by the body,
// with the wire's CRLF line ends turned into the Unix LF that Maildir and mbox
// readers expect. Streaming: a chunk in, bytes out, no whole message in memory.
#pragma once

#include <string>
#include <string_view>

namespace wsmtp::deliver {

// "Return-Path: <from>\nDelivered-To: rcpt\n"
std::string local_trace_headers(std::string_view envelope_from, std::string_view recipient);

// Converts CRLF to LF across chunk boundaries; lone CRs are kept.
class CrlfToLf {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  bool pending_cr_ = false;
};

}  // namespace wsmtp::deliver
