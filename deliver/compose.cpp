#include "compose.h"

#include <cstring>

namespace wsmtp::deliver {

std::string local_trace_headers(std::string_view envelope_from, std::string_view recipient) {
  std::string out = "Return-Path: <";
  out += envelope_from;
  out += ">\nDelivered-To: ";
  out += recipient;
  out += '\n';
  return out;
}

// Copies runs between CRs whole (memchr), not byte by byte: every local copy
// of every message passes through here.
void CrlfToLf::feed(std::string_view in, std::string& out) {
  out.reserve(out.size() + in.size() + 1);
  std::size_t pos = 0;
  if (pending_cr_ && !in.empty()) {
    pending_cr_ = false;
    if (in.front() != '\n') out += '\r';
  }
  while (pos < in.size()) {
    const void* found = std::memchr(in.data() + pos, '\r', in.size() - pos);
    if (!found) {
      out.append(in.substr(pos));
      return;
    }
    auto cr = static_cast<std::size_t>(static_cast<const char*>(found) - in.data());
    out.append(in.substr(pos, cr - pos));
    if (cr + 1 == in.size()) {
      pending_cr_ = true;  // the next piece says whether it was a line end
      return;
    }
    if (in[cr + 1] != '\n') out += '\r';
    pos = cr + 1;
  }
}

void CrlfToLf::finish(std::string& out) {
  if (pending_cr_) out += '\r';
  pending_cr_ = false;
}

}  // namespace wsmtp::deliver
