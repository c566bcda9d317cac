#include "compose.h"

namespace wsmtp::deliver {

std::string local_trace_headers(std::string_view envelope_from, std::string_view recipient) {
  std::string out = "Return-Path: <";
  out += envelope_from;
  out += ">\nDelivered-To: ";
  out += recipient;
  out += '\n';
  return out;
}

void CrlfToLf::feed(std::string_view in, std::string& out) {
  for (char ch : in) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (ch != '\n') out += '\r';
    }
    if (ch == '\r') {
      pending_cr_ = true;
      continue;
    }
    out += ch;
  }
}

void CrlfToLf::finish(std::string& out) {
  if (pending_cr_) out += '\r';
  pending_cr_ = false;
}

}  // namespace wsmtp::deliver
