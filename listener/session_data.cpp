// The message content of a session: DATA (dot-unstuffing, RFC 5321 §4.5.2, and
// the end-of-data rule) and BDAT (RFC 3030 chunks of counted octets), both feeding
// one BodyFilter (line endings, line length, header checks; see body_filter.h),
// the Received: trace header, and streaming to the store.
//
// End of DATA: only <CRLF>.<CRLF>. A "." line that ends in a bare LF, or that
// follows a line ending in a bare LF, is ordinary content (stored as "." + CRLF).
//
// Storage: a message that ends within its first chunk (the common case) is stored
// in one transaction at the end (StoreWhole, which the store worker may batch with
// other sessions'); a bigger one gets its state-0 row when the first chunk is
// full and is appended chunk by chunk. Either way 250 comes only after the commit
// that set state 1, and nothing is in state 1 for a message that was refused.
#include <charconv>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "log.h"
#include "mail/date.h"
#include "printable.h"
#include "queue_id.h"
#include "queue_ids.h"
#include "session.h"
#include "replies.h"

namespace wsmtp::listener {

namespace replies = common::smtp::replies;

void Session::cmd_data(std::string_view arg) {
  if (!has_mail_) return error(replies::need_mail());
  if (!arg.empty()) return error(replies::syntax_error("DATA"));
  if (body_started_) return error(replies::bad_sequence("DATA after BDAT"));
  if (recipients_.empty()) return error(recipient_rejected_ ? replies::no_valid_recipients() : replies::need_rcpt());
  if (have_queue_id(Pending::queue_id_data)) body_may_start(false);
}

// The queue id is known: the milters may refuse the message before its body.
void Session::body_may_start(bool bdat) {
  if (milter_refusal_) {
    if (!bdat) return reply(*milter_refusal_);
    bdat_refusal_ = *milter_refusal_;
    return begin_bdat_chunk();
  }
  if (has_milters()) return milter_data(bdat);
  if (!bdat) return begin_data();
  start_body();
  begin_bdat_chunk();
}

void Session::begin_data() {
  start_body();
  phase_ = Phase::data;
  at_line_start_ = true;
  // The DATA line's own ending is the "CRLF" in front of a "." on the first line.
  prev_crlf_ = command_crlf_;
  carry_.clear();
  reply(replies::start_data());
}

// BDAT <size> [LAST]. The chunk's octets follow the command whatever we answer,
// so a refused chunk is still read (and discarded) before the refusal is sent.
void Session::cmd_bdat(std::string_view arg) {
  auto space = arg.find(' ');
  std::string_view size_text = arg.substr(0, space);
  std::string_view rest = space == std::string_view::npos ? std::string_view() : arg.substr(space + 1);
  std::uint64_t size = 0;
  auto r = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
  bool last = rest.size() == 4 && (rest == "LAST" || rest == "last" || rest == "Last");
  if (size_text.empty() || size_text.size() > 20 || r.ec != std::errc() ||
      r.ptr != size_text.data() + size_text.size() || (!rest.empty() && !last)) {
    // Without a valid size the chunk's end is unknown: the rest of the input
    // cannot be told from commands, so the session ends (RFC 3030 §4.3 leaves
    // recovery to the server).
    error(replies::syntax_error("BDAT <size> [LAST]"));
    if (!close_) close_with(replies::too_many_errors(config_.hostname));
    return;
  }
  bdat_refusal_.reset();
  bdat_size_ = size;
  bdat_last_ = last;
  if (!has_mail_) {
    bdat_refusal_ = replies::need_mail();
  } else if (recipients_.empty()) {
    bdat_refusal_ = recipient_rejected_ ? replies::no_valid_recipients() : replies::need_rcpt();
  } else if (!body_started_) {
    // Parked before the chunk's octets are read: they start the body, which
    // starts with the Received: header naming the queue id.
    if (!have_queue_id(Pending::queue_id_bdat)) return;
    return body_may_start(true);
  }
  begin_bdat_chunk();
}

void Session::begin_bdat_chunk() {
  bdat_remaining_ = bdat_size_;
  phase_ = Phase::bdat;
  if (bdat_size_ == 0) bdat_chunk_done();
}

// The message's queue id is taken when its body starts, from the listener's
// reserve without waiting; if that is empty, the session parks (as `pending`)
// until a store worker has reserved more. False: parked, queue_id_result() goes on.
bool Session::have_queue_id(Pending pending) {
  if (queue_id_ != 0) return true;
  if (context_.queue_ids) {
    if (auto id = context_.queue_ids->take()) {
      queue_id_ = *id;
      return true;
    }
  }
  issue(TakeQueueId{}, pending);
  return false;
}

void Session::queue_id_result(Pending was, const StoreResult& result) {
  if (result.ok) queue_id_ = result.msg_id;
  const auto refusal = result.no_shard ? replies::no_queue_available() : replies::try_again_later();
  if (was == Pending::queue_id_data) return result.ok ? body_may_start(false) : reply(refusal);
  // BDAT: the chunk is read either way; without an id it is discarded and refused.
  if (result.ok) return body_may_start(true);
  bdat_refusal_ = refusal;
  begin_bdat_chunk();
}

void Session::start_body() {
  body_started_ = true;
  outcome_ = DataOutcome::ok;
  seq_ = 0;
  body_size_ = 0;
  filter_.reset(config_.max_line_length);
  filter_.on_end_of_headers(
      [](const BodyFilter&, void* self) { return static_cast<Session*>(self)->missing_headers(); }, this);
  chunk_ = received_header();
  chunk_.reserve(kBodyChunkSize + kDataPiece + 2);
  stored_size_ = chunk_.size();
}

// RFC 3848 / RFC 6531 §3.7.3 protocol names for the "with" clause.
std::string Session::with_protocol() const {
  std::string protocol = smtputf8_ ? "UTF8SMTP" : esmtp_ ? "ESMTP" : "SMTP";
  if (smtputf8_ || esmtp_) {
    if (tls_active()) protocol += "S";
    if (authenticated()) protocol += "A";
  }
  return protocol;
}

// RFC 5321 §4.4 trace header. The client is named by its HELO and its address
// only (no reverse DNS: the listener never waits on DNS); "for" only with a
// single recipient so a message to many does not list them all (Postfix does the same).
std::string Session::received_header() const {
  auto ip = context_.client.family == IpAddress::Family::v6 ? "IPv6:" + client_ip_ : client_ip_;
  auto date = common::mail::rfc5322_date(std::chrono::system_clock::to_time_t(context_.clock()));
  std::string header = fmt::format("Received: from {} ([{}])\r\n\tby {}", helo_, ip, config_.hostname);
  if (tls_active()) header += fmt::format(" ({})", tls_cipher_);
  // The queue id, as in the 250 and the logs (RFC 5321 §4.4 "ID" clause).
  header += fmt::format(" with {} id {}", with_protocol(), common::qid(queue_id_));
  if (recipients_.size() == 1) header += fmt::format("\r\n\tfor <{}>", recipients_.front());
  header += fmt::format("; {}\r\n", date);
  return header;
}

// RFC 5322 requires Date: and (should) Message-ID:. Only for our own users'
// submissions (trusted networks or AUTH): mail from elsewhere is passed on as sent.
std::string Session::missing_headers() const {
  if (!trusted_ && !authenticated()) return {};
  auto now = std::chrono::system_clock::to_time_t(context_.clock());
  std::string out;
  if (!filter_.has_date()) out += "Date: " + common::mail::rfc5322_date(now) + "\r\n";
  if (!filter_.has_message_id()) {
    std::string origin = context_.received_by;
    for (auto& ch : origin)
      if (ch == ':') ch = '.';
    out += fmt::format("Message-ID: <{:%Y%m%d%H%M%S}.{}.{}@{}>\r\n", fmt::gmtime(now), common::qid(queue_id_), origin,
                       config_.hostname);
  }
  return out;
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
    body_content(bytes);
    return flush_chunk(false);
  }

  bool crlf = !bytes.empty() && bytes.back() == '\r';
  if (crlf) bytes.remove_suffix(1);
  if (at_line_start_ && bytes == "." && crlf && prev_crlf_) return end_of_data();
  // §4.5.2: the first character is deleted if it is a period and others follow.
  if (at_line_start_ && bytes.size() > 1 && bytes.front() == '.') bytes.remove_prefix(1);
  body_content(bytes);
  body_line_end();
  at_line_start_ = true;
  prev_crlf_ = crlf;
  flush_chunk(false);
}

void Session::on_raw(std::string_view bytes) {
  if (phase_ != Phase::bdat || bytes.size() > bdat_remaining_ || waiting())
    log::fatal("session fed BDAT bytes it did not ask for (server bug)");
  bdat_remaining_ -= bytes.size();
  if (!bdat_refusal_) {
    // Line ends inside the chunk; a CR at the end of a piece waits for the next
    // byte (CRLF split across pieces or chunks).
    std::string joined;
    if (!carry_.empty()) {
      joined = std::exchange(carry_, {});
      joined.append(bytes);
      bytes = joined;
    }
    for (auto lf = bytes.find('\n'); lf != std::string_view::npos; lf = bytes.find('\n')) {
      auto line = bytes.substr(0, lf);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      body_content(line);
      body_line_end();
      bytes.remove_prefix(lf + 1);
    }
    if (!bytes.empty() && bytes.back() == '\r') {
      carry_ = "\r";
      bytes.remove_suffix(1);
    }
    body_content(bytes);
    flush_chunk(false);
  }
  if (bdat_remaining_ > 0) return;
  if (waiting()) {
    bdat_done_pending_ = true;  // finished when the outstanding append returns
    return;
  }
  bdat_chunk_done();
}

void Session::body_content(std::string_view bytes) {
  if (outcome_ != DataOutcome::ok) return;  // doomed message: read on, store nothing
  body_size_ += bytes.size();
  if (over_size()) return;
  auto before = chunk_.size();
  filter_.content(bytes, chunk_);
  stored_size_ += chunk_.size() - before;
}

void Session::body_line_end() {
  if (outcome_ != DataOutcome::ok) return;
  body_size_ += 2;
  if (over_size()) return;
  auto before = chunk_.size();
  filter_.line_end(chunk_);
  stored_size_ += chunk_.size() - before;
  if (filter_.line_too_long()) {
    log::info("msg={} rejected from=<{}> client={}: line longer than {} octets", common::qid(queue_id_),
              common::printable(envelope_from_), client_ip_, config_.max_line_length);
    outcome_ = DataOutcome::line_too_long;
  } else if (filter_.received_headers() > config_.max_received_headers) {
    log::info("msg={} rejected from=<{}> client={}: mail loop ({} Received: headers)", common::qid(queue_id_),
              common::printable(envelope_from_), client_ip_, filter_.received_headers());
    outcome_ = DataOutcome::loop;
  }
  if (outcome_ != DataOutcome::ok) {
    std::string().swap(chunk_);
    abort_message_if_any();
  }
}

bool Session::over_size() {
  if (body_size_ <= config_.max_message_size) return false;
  // The client cannot be interrupted mid-DATA (it reads no replies until the
  // end), so the row is aborted now and the rest of the data is discarded.
  log::info("msg={} rejected from=<{}> client={}: message larger than {} bytes", common::qid(queue_id_),
            common::printable(envelope_from_), client_ip_, config_.max_message_size);
  outcome_ = DataOutcome::too_big;
  std::string().swap(chunk_);
  abort_message_if_any();
  return true;
}

// Hands a full chunk (or, at the end, the remainder) to the store and parks the
// session until it is written: the server stops reading meanwhile (backpressure).
void Session::flush_chunk(bool last) {
  if (outcome_ != DataOutcome::ok || waiting()) return;
  if (has_milters() && !finishing_) {
    // The milters see the header section once it is complete, and the body as it grows.
    if (!milter_headers_sent_ && (last || !filter_.in_headers())) milter_scan_headers();
    if (!milter_headers_sent_ && chunk_.size() >= kBodyChunkSize) {
      // Header changes need the whole section in hand until the verdict.
      log::info("msg={} rejected from=<{}> client={}: header section larger than {} bytes", common::qid(queue_id_),
                common::printable(envelope_from_), client_ip_, kBodyChunkSize);
      outcome_ = DataOutcome::header_too_big;
      std::string().swap(chunk_);
      return abort_message_if_any();
    }
    if (milter_headers_sent_) milter_send_body(last || chunk_.size() >= kBodyChunkSize);
    if (last) return milter_end_of_message();
  }
  if (!last && chunk_.size() < kBodyChunkSize) return;
  if (msg_id_ == 0) {
    if (last && !edits_.held_reason) {
      return issue(StoreWhole{common::CompleteMessage{new_message(), std::exchange(chunk_, {}), queue_id_}},
                   Pending::store_whole);
    }
    // A big message: its row exists from now on; the chunk waits for the row.
    if (has_milters() && !finishing_) milter_catch_up();
    return issue(BeginMessage{queue_id_, new_message()}, Pending::begin);
  }
  if (last && chunk_.empty()) {
    return issue(CommitMessage{msg_id_, static_cast<std::int64_t>(stored_size_), fair_client(), edits_},
                 Pending::commit);
  }
  if (has_milters() && seq_ == 0 && !finishing_) milter_split_header();
  milter_sent_ = 0;
  AppendBody op{msg_id_, seq_++, std::exchange(chunk_, {})};
  if (!last) chunk_.reserve(kBodyChunkSize + kDataPiece + 2);
  issue(std::move(op), last ? Pending::append_last : Pending::append);
}

void Session::append_result(Pending was, const StoreResult& result) {
  if (!result.ok) {
    if (was == Pending::begin || was == Pending::append) {
      // The client is still sending; the answer waits for the end of the data.
      outcome_ = DataOutcome::store_failed;
      std::string().swap(chunk_);
      abort_message_if_any();
    } else {
      reply(replies::try_again_later());
      abort_message_if_any();
      reset_transaction();
    }
  } else if (was == Pending::begin) {
    msg_id_ = queue_id_;
    // Writes the chunk that was waiting for the id, and parks again.
    flush_chunk(finishing_);
  } else if (was == Pending::append_last) {
    issue(CommitMessage{msg_id_, static_cast<std::int64_t>(stored_size_), fair_client(), edits_}, Pending::commit);
  } else if (was == Pending::commit || was == Pending::store_whole) {
    // DESIGN: 250 only once the transaction that set state 1 has committed.
    accepted();
    reset_transaction();
  }
  if (!waiting() && std::exchange(bdat_done_pending_, false)) bdat_chunk_done();
}

void Session::end_of_data() {
  // The next line is a command again, whatever the outcome (RFC 5321 §4.1.1.4).
  phase_ = Phase::ready;
  carry_.clear();
  finish_message();
}

void Session::bdat_chunk_done() {
  phase_ = Phase::ready;
  if (auto refusal = std::exchange(bdat_refusal_, std::nullopt)) return error(*refusal);
  if (outcome_ != DataOutcome::ok || !bdat_last_) {
    // RFC 3030 §2: a failed chunk is answered at once; the client then RSETs.
    if (outcome_ != DataOutcome::ok) return finish_message();
    return reply(replies::chunk_received(bdat_size_));
  }
  if (!carry_.empty()) {
    carry_.clear();
    body_content("\r");  // a bare CR at the very end: a line end, like any other
  }
  finish_message();
}

// The end of the message (final dot or BDAT LAST): the refusal, or the commit.
void Session::finish_message() {
  if (outcome_ == DataOutcome::ok) {
    auto before = chunk_.size();
    filter_.finish(chunk_);
    stored_size_ += chunk_.size() - before;
  }
  switch (outcome_) {
    case DataOutcome::too_big:
      return fail_message(replies::message_too_big(config_.max_message_size));
    case DataOutcome::line_too_long:
      return fail_message(replies::data_line_too_long(config_.max_line_length));
    case DataOutcome::loop:
      return fail_message(replies::mail_loop(filter_.received_headers()));
    case DataOutcome::store_failed:
      return fail_message(replies::try_again_later());
    case DataOutcome::header_too_big:
      return fail_message(replies::milter_header_too_big(kBodyChunkSize));
    case DataOutcome::ok:
      return flush_chunk(true);
  }
}

void Session::fail_message(const common::smtp::Reply& r) {
  abort_message_if_any();
  reply(r);
  reset_transaction();
}

}  // namespace wsmtp::listener
