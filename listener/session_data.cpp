// The DATA phase of a session: the Received: header, dot-unstuffing (RFC 5321
// §4.5.2), the end-of-data rule, and streaming the body to the store in chunks.
//
// Line-ending policy (the SMTP smuggling class, CVE-2023-51764 and relatives):
// only <CRLF>.<CRLF> ends the data. A "." line that ends in a bare LF, or that
// follows a line ending in a bare LF, is ordinary content and is stored as ".".
// Every bare LF is stored as CRLF, so the stored body has one line-ending
// convention and a relay that copies it cannot be made to see a message boundary
// that this listener did not see. A bare CR is content (it is not a line ending
// anywhere in RFC 5321) and is stored as it came.
#include <fmt/chrono.h>
#include <fmt/format.h>

#include "log.h"
#include "session.h"
#include "smtp/replies.h"

namespace wsmtp::listener {

namespace replies = common::smtp::replies;

void Session::start_data(std::int64_t msg_id) {
  msg_id_ = msg_id;
  phase_ = Phase::data;
  outcome_ = DataOutcome::ok;
  seq_ = 0;
  body_size_ = 0;
  at_line_start_ = true;
  // The DATA line's own ending is the "CRLF" in front of a "." on the first line.
  prev_crlf_ = command_crlf_;
  carry_.clear();
  chunk_ = received_header();
  chunk_.reserve(kBodyChunkSize + kDataPiece + 2);
  stored_size_ = chunk_.size();
  reply(replies::start_data());
}

// RFC 5321 §4.4 trace header. The client is named by its HELO and its address
// only (no reverse DNS: the listener never waits on DNS); "for" only with a
// single recipient so a message to many does not list them all (Postfix does the same).
std::string Session::received_header() const {
  auto ip = context_.client.family == IpAddress::Family::v6 ? "IPv6:" + client_ip_ : client_ip_;
  auto date = fmt::format("{:%a, %d %b %Y %H:%M:%S} +0000",
                          fmt::gmtime(std::chrono::system_clock::to_time_t(context_.clock())));
  std::string header = fmt::format("Received: from {} ([{}])\r\n\tby {} with {} id {}", helo_, ip, config_.hostname,
                                   esmtp_ ? "ESMTP" : "SMTP", msg_id_);
  if (recipients_.size() == 1) header += fmt::format("\r\n\tfor <{}>", recipients_.front());
  header += fmt::format("; {}\r\n", date);
  return header;
}

void Session::data_piece(std::string_view bytes, bool complete) {
  std::string joined;
  if (!carry_.empty()) {
    joined = std::exchange(carry_, {});
    joined.append(bytes);
    bytes = joined;
  }
  if (!complete) {
    // Hold back what cannot be judged before more arrives: a trailing CR may be
    // half of the CRLF, and a line that so far is one character may be "." (the end
    // of data) or a stuffed dot.
    std::size_t hold = !bytes.empty() && bytes.back() == '\r' ? 1 : 0;
    if (at_line_start_ && bytes.size() - hold <= 1) hold = bytes.size();
    carry_.assign(bytes.substr(bytes.size() - hold));
    bytes.remove_suffix(hold);
    if (bytes.empty()) return;
    // This line has more than one character, so a leading dot is a stuffed one.
    if (at_line_start_ && bytes.front() == '.') bytes.remove_prefix(1);
    at_line_start_ = false;
    body_bytes(bytes);
    return flush_chunk(false);
  }

  bool crlf = !bytes.empty() && bytes.back() == '\r';
  if (crlf) bytes.remove_suffix(1);
  if (at_line_start_ && bytes == "." && crlf && prev_crlf_) return end_of_data();
  // §4.5.2: the first character is deleted if it is a period and others follow.
  if (at_line_start_ && bytes.size() > 1 && bytes.front() == '.') bytes.remove_prefix(1);
  body_bytes(bytes);
  body_bytes("\r\n");
  at_line_start_ = true;
  prev_crlf_ = crlf;
  flush_chunk(false);
}

void Session::body_bytes(std::string_view bytes) {
  if (outcome_ != DataOutcome::ok) return;  // doomed message: read on, store nothing
  body_size_ += bytes.size();
  if (body_size_ > config_.max_message_size) {
    // The client cannot be interrupted mid-DATA (it reads no replies until the
    // end), so the row is aborted now and the rest of the data is discarded.
    log::info("msg={} rejected from=<{}> client={}: message larger than {} bytes", msg_id_, envelope_from_,
              client_ip_, config_.max_message_size);
    outcome_ = DataOutcome::too_big;
    std::string().swap(chunk_);
    abort_message_if_any();
    return;
  }
  chunk_.append(bytes);
  stored_size_ += bytes.size();
}

// Hands a full chunk (or, at the end, the remainder) to the store and parks the
// session until it is written: the server stops reading meanwhile (backpressure).
void Session::flush_chunk(bool last) {
  if (outcome_ != DataOutcome::ok || waiting()) return;
  if (!last && chunk_.size() < kBodyChunkSize) return;
  if (last && chunk_.empty()) {
    return issue(CommitMessage{msg_id_, static_cast<std::int64_t>(stored_size_)}, Pending::commit);
  }
  AppendBody op{msg_id_, seq_++, std::exchange(chunk_, {})};
  if (!last) chunk_.reserve(kBodyChunkSize + kDataPiece + 2);
  issue(std::move(op), last ? Pending::append_last : Pending::append);
}

void Session::end_of_data() {
  // The next line is a command again, whatever the outcome (RFC 5321 §4.1.1.4).
  phase_ = Phase::ready;
  carry_.clear();
  switch (outcome_) {
    case DataOutcome::too_big:
      abort_message_if_any();
      reply(replies::message_too_big(config_.max_message_size));
      return reset_transaction();
    case DataOutcome::store_failed:
      abort_message_if_any();
      reply(replies::try_again_later());
      return reset_transaction();
    case DataOutcome::ok:
      return flush_chunk(true);
  }
}

}  // namespace wsmtp::listener
