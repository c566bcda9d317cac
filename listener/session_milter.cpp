// The milters' side of the SMTP dialogue ([listener] milters): which event
// each stage sends, with which macros (those Postfix sends by default), and
// what each verdict does to the session. The chain (milter/chain.h) does the
// talking; this stays pure, like the rest of the session.
//
// The 250 rule: the end-of-message verdict comes before the message is
// stored as RECEIVED, and its changes are in the same commit (schema 024), so
// a rejected or discarded message never reaches state 1 and an accepted one
// is never stored without its changes.
#include <fmt/format.h>

#include "ascii.h"
#include "log.h"
#include "milter/message_edit.h"
#include "printable.h"
#include "queue_id.h"
#include "replies.h"
#include "session.h"

namespace wsmtp::listener {

namespace replies = common::smtp::replies;
using milter::Stage;
using milter::Verdict;

namespace {

// "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" (tls.cpp's describe_tls).
struct TlsParts {
  std::string version, cipher, bits;
};
TlsParts tls_parts(std::string_view description) {
  TlsParts parts;
  std::vector<std::string_view> words;
  for (std::size_t at = 0; at < description.size();) {
    auto end = description.find(' ', at);
    if (end == std::string_view::npos) end = description.size();
    words.push_back(description.substr(at, end - at));
    at = end + 1;
  }
  if (words.size() > 1) parts.version = std::string(words[1]);
  if (words.size() > 4) parts.cipher = std::string(words[4]);
  if (words.size() > 5) parts.bits = std::string(words[5].substr(1, words[5].find('/') - 1));
  return parts;
}

}  // namespace

void Session::milter_emit(milter::Event event) { milter_out_.push_back(std::move(event)); }

void Session::milter_await(milter::Event event, MilterWait wait) {
  event.awaited = true;
  milter_emit(std::move(event));
  pending_ = Pending::milter;
  milter_wait_ = wait;
}

// No reverse DNS (the listener never waits on DNS): the client is "unknown",
// as Postfix calls a client without a verified name.
milter::Macros Session::connect_macros() const {
  return {{"j", config_.hostname},
          {"_", fmt::format("unknown [{}]", client_ip_)},
          {"{daemon_name}", "wsmtp"},
          {"{client_addr}", client_ip_},
          {"{client_name}", "unknown"},
          {"{client_port}", std::to_string(context_.client_port)},
          {"v", "WSMTP"}};
}

milter::Macros Session::helo_macros() const {
  if (!tls_active()) return {};
  auto tls = tls_parts(tls_cipher_);
  return {{"{tls_version}", tls.version}, {"{cipher}", tls.cipher}, {"{cipher_bits}", tls.bits}};
}

milter::Macros Session::mail_macros() const {
  milter::Macros macros{{"{mail_addr}", envelope_from_}};
  if (authenticated()) {
    macros.emplace_back("{auth_type}", auth_mechanism_);
    macros.emplace_back("{auth_authen}", auth_user_);
  }
  return macros;
}

milter::Macros Session::queue_id_macros() const { return {{"i", fmt::format("{}", common::qid(queue_id_))}}; }

void Session::milter_mail(std::string_view params) {
  auto mail = milter::make_event(Stage::mail, mail_macros());
  mail.args.push_back("<" + envelope_from_ + ">");
  while (!(params = common::trim_blanks(params)).empty()) {
    auto end = params.find(' ');
    mail.args.emplace_back(params.substr(0, end));
    params = end == std::string_view::npos ? std::string_view() : params.substr(end);
  }
  milter_in_message_ = true;  // from now on the milters hold message state: an abort resets it
  milter_await(std::move(mail), MilterWait::mail);
}

void Session::milter_rcpt() {
  auto rcpt = milter::make_event(Stage::rcpt, {{"{rcpt_addr}", pending_recipient_}});
  rcpt.args.push_back("<" + pending_recipient_ + ">");
  milter_await(std::move(rcpt), MilterWait::rcpt);
}

void Session::milter_data(bool bdat) {
  milter_await(milter::make_event(Stage::data, queue_id_macros()), bdat ? MilterWait::bdat : MilterWait::data);
}

// The header section ends with the first empty line (CR and LF only come as
// CRLF in chunk_: body_filter.h); a message without one is all header.
void Session::milter_scan_headers() {
  auto blank = chunk_.find("\r\n\r\n");
  header_end_ = blank == std::string::npos ? chunk_.size() : blank + 4;
  milter_headers_sent_ = true;
  milter_sent_ = header_end_;
  milter_send_content(milter_content_target(), std::string_view(chunk_).substr(0, header_end_), {});
}

// Full pieces only, unless `all` (the chunk is about to be stored, or the
// message has ended): the milters get the body while it is being stored.
void Session::milter_send_body(bool all) {
  while (chunk_.size() > milter_sent_) {
    auto size = std::min(chunk_.size() - milter_sent_, milter::kMaxBodyChunk);
    if (size < milter::kMaxBodyChunk && !all) return;
    auto body = milter::make_event(Stage::body, {}, milter_content_target());
    body.bytes = chunk_.substr(milter_sent_, size);
    milter_sent_ += size;
    milter_emit(std::move(body));
  }
}

// A streamed message's header section stays in memory (at most one chunk)
// until the verdict, so the milters can change it; its body goes to the store
// from chunk 1 on.
void Session::milter_split_header() {
  milter_header_ = chunk_.substr(0, header_end_);
  chunk_.erase(0, header_end_);
  seq_ = 1;
}

void Session::milter_end_of_message() {
  milter_turn_ = 0;
  milter_await(milter::make_event(Stage::end_of_message, queue_id_macros(), milter_content_target()),
               MilterWait::end_of_message);
}

void Session::milter_abort_if_in_message() {
  if (!std::exchange(milter_in_message_, false)) return;
  milter_emit(milter::make_event(Stage::abort));
}

common::smtp::Reply Session::milter_reply(const Verdict& verdict, bool content) const {
  if (verdict.reply) return *verdict.reply;
  if (verdict.kind == Verdict::Kind::tempfail) return replies::milter_tempfail();
  return content ? replies::milter_content_rejected() : replies::milter_command_rejected();
}

void Session::on_milter_verdict(const Verdict& verdict) {
  if (pending_ != Pending::milter) return;  // the session is gone or already answered
  pending_ = Pending::none;
  auto wait = std::exchange(milter_wait_, MilterWait::none);
  if (close_) return;
  if (shutdown_pending_) return shut_down_now();
  if (verdict.kind == Verdict::Kind::shutdown) {
    log::info("client={} milter {} closes the session", client_ip_, verdict.milter);
    abort_message_if_any();
    return close_with(replies::milter_shutdown(config_.hostname));
  }
  bool refused = verdict.kind == Verdict::Kind::reject || verdict.kind == Verdict::Kind::tempfail;
  if (refused && wait != MilterWait::end_of_message)
    log::info("client={} milter {} refused {}: {} {}", client_ip_, verdict.milter,
              wait == MilterWait::connect ? "the connection" : "a command", milter_reply(verdict, false).code,
              common::printable(milter_reply(verdict, false).text));
  switch (wait) {
    case MilterWait::connect:
      if (refused) milter_refusal_ = milter_reply(verdict, false);
      return;
    case MilterWait::helo:
      if (refused) {
        milter_helo_refusal_ = milter_reply(verdict, false);
        return reply(*milter_helo_refusal_);
      }
      milter_helo_refusal_.reset();
      return helo_reply();
    case MilterWait::mail:
      if (refused) {
        envelope_from_.clear();
        backlog_keys_.clear();
        milter_abort_if_in_message();
        return reply(milter_reply(verdict, false));
      }
      if (verdict.kind == Verdict::Kind::discard) milter_discard_ = true;
      has_mail_ = true;
      smtputf8_ = milter_pending_smtputf8_;
      return reply(replies::sender_ok());
    case MilterWait::rcpt:
      if (refused) {
        recipient_rejected_ = true;
        log_rejected_recipient("refused by milter " + verdict.milter);
        return reply(milter_reply(verdict, false));
      }
      if (verdict.kind == Verdict::Kind::discard) milter_discard_ = true;
      recipients_.push_back(std::move(pending_recipient_));
      return reply(replies::recipient_ok());
    case MilterWait::data:
      if (refused) return reply(milter_reply(verdict, false));
      if (verdict.kind == Verdict::Kind::discard) milter_discard_ = true;
      return begin_data();
    case MilterWait::bdat:
      if (refused) {
        bdat_refusal_ = milter_reply(verdict, false);
        return begin_bdat_chunk();
      }
      if (verdict.kind == Verdict::Kind::discard) milter_discard_ = true;
      start_body();
      return begin_bdat_chunk();
    case MilterWait::end_of_message:
      return milter_message_verdict(verdict);
    case MilterWait::none:
      return;
  }
}

void Session::milter_message_verdict(const Verdict& verdict) {
  if (verdict.kind == Verdict::Kind::reject || verdict.kind == Verdict::Kind::tempfail) {
    milter_in_message_ = false;  // the chain ends the message for every milter
    auto r = milter_reply(verdict, true);
    log::info("msg={} rejected from=<{}> client={} by milter {}: {} {}", common::qid(queue_id_),
              common::printable(envelope_from_), client_ip_, verdict.milter, r.code, common::printable(r.text));
    return fail_message(r);
  }
  if (verdict.kind == Verdict::Kind::discard) {
    milter_in_message_ = false;
    return milter_discard("milter " + verdict.milter);
  }
  milter_apply(verdict);
  if (milter_sequential() && ++milter_turn_ < static_cast<int>(config_.milters->size()))
    return milter_replay(milter_turn_);
  milter_in_message_ = false;  // every milter has finished the message
  if (milter_discard_) return milter_discard("a milter, before the end of the message");
  milter_store();
}

// 250 with the queue id, as for any accepted message, and nothing is kept: the
// sender must not learn that a filter threw the message away (libmilter's discard).
void Session::milter_discard(std::string_view why) {
  log::info("msg={} discarded from=<{}> client={} by {}", common::qid(queue_id_), common::printable(envelope_from_),
            client_ip_, why);
  abort_message_if_any();
  reply(replies::queued(queue_id_));
  reset_transaction();
}

std::string_view Session::milter_original_header() const {
  return msg_id_ != 0 ? std::string_view(milter_header_) : std::string_view(chunk_).substr(0, header_end_);
}

std::string Session::milter_current_header() const {
  return milter_edited_header_ ? milter_edited_header_->str() : std::string(milter_original_header());
}

// One milter's end-of-message changes, on the message as the earlier milters left it.
void Session::milter_apply(const Verdict& verdict) {
  bool replaced_here = false;
  for (std::size_t i = 0; i < verdict.changes.size(); ++i) {
    const auto& change = verdict.changes[i];
    const auto& by = i < verdict.changed_by.size() ? verdict.changed_by[i] : verdict.milter;
    using Kind = milter::Reply::Kind;
    switch (change.kind) {
      case Kind::add_header:
      case Kind::insert_header:
      case Kind::change_header:
        if (!milter_edited_header_) milter_edited_header_ = milter::HeaderSection::parse(milter_original_header());
        milter_edited_header_->apply(change);
        log::info("msg={} milter {}: {} header {}", common::qid(queue_id_), by,
                  change.kind == Kind::add_header      ? "added"
                  : change.kind == Kind::insert_header ? "inserted"
                  : change.value.empty()               ? "deleted"
                                                       : "changed",
                  common::printable(change.name));
        break;
      case Kind::change_from:
      case Kind::add_rcpt:
      case Kind::add_rcpt_with_args:
      case Kind::delete_rcpt:
        milter::apply_envelope_change(change, envelope_from_, recipients_);
        (change.kind == Kind::change_from ? milter_sender_changed_ : milter_rcpts_changed_) = true;
        log::info("msg={} milter {}: {} <{}>", common::qid(queue_id_), by,
                  change.kind == Kind::change_from   ? "sender changed to"
                  : change.kind == Kind::delete_rcpt ? "recipient deleted"
                                                     : "recipient added",
                  common::printable(milter::bare_address(change.address)));
        break;
      case Kind::replace_body:
        if (!std::exchange(replaced_here, true)) {
          milter_new_body_.emplace();
          log::info("msg={} milter {}: body replaced", common::qid(queue_id_), by);
        }
        milter_new_body_->append(change.body);
        break;
      case Kind::quarantine:
        edits_.held_reason = fmt::format("milter {}: {}", by, change.reason);
        log::info("msg={} quarantined by milter {}: {}", common::qid(queue_id_), by, common::printable(change.reason));
        break;
      default:
        break;  // verdicts are not changes; the chain passes none here
    }
  }
  if (replaced_here) *milter_new_body_ = milter::normalize_line_ends(*milter_new_body_);
}

// Several milters and a message held in memory: each later milter gets the
// content after the earlier ones have finished with it, their changes in
// (Postfix's order). A streamed message went to all of them as it arrived.
bool Session::milter_sequential() const { return config_.milters->size() > 1 && !milter_stream_all_; }

int Session::milter_content_target() const { return milter_sequential() ? milter_turn_ : -1; }

void Session::milter_send_content(int target, std::string_view header, std::string_view body) {
  auto section = milter::HeaderSection::parse(header);
  for (const auto& field : section.fields()) {
    if (field.name.empty()) continue;  // not a field (no colon): nothing a milter could name
    auto event = milter::make_event(Stage::header, {}, target);
    event.text = field.name;
    event.value = std::string(field.value());
    milter_emit(std::move(event));
  }
  milter_emit(milter::make_event(Stage::end_of_headers, queue_id_macros(), target));
  while (!body.empty()) {
    auto event = milter::make_event(Stage::body, {}, target);
    event.bytes = std::string(body.substr(0, milter::kMaxBodyChunk));
    body.remove_prefix(event.bytes.size());
    milter_emit(std::move(event));
  }
}

void Session::milter_replay(int target) {
  auto header = milter_current_header();
  std::string_view body =
      milter_new_body_ ? std::string_view(*milter_new_body_) : std::string_view(chunk_).substr(header_end_);
  milter_send_content(target, header, body);
  milter_await(milter::make_event(Stage::end_of_message, queue_id_macros(), target), MilterWait::end_of_message);
}

// The message outgrows memory: the later milters get what the first one has
// had so far, and from now on everything goes to all of them as it arrives.
void Session::milter_catch_up() {
  if (!milter_sequential()) return;
  std::string_view header = std::string_view(chunk_).substr(0, header_end_);
  std::string_view body = std::string_view(chunk_).substr(header_end_, milter_sent_ - header_end_);
  for (int target = 1; target < static_cast<int>(config_.milters->size()); ++target)
    milter_send_content(target, header, body);
  milter_stream_all_ = true;
}

void Session::milter_store() {
  if (recipients_.empty()) return milter_discard("milters, which deleted every recipient");
  std::string header_bytes = milter_current_header();
  finishing_ = true;
  if (msg_id_ == 0) {
    // Whole in memory: the changed message is stored as any other (StoreWhole,
    // or, held, through a row of its own: flush_chunk).
    std::string rest = milter_new_body_ ? std::move(*milter_new_body_) : chunk_.substr(header_end_);
    chunk_ = std::move(header_bytes);
    chunk_ += rest;
    stored_size_ = chunk_.size();
    return flush_chunk(true);
  }
  // Streamed: the header section becomes chunk 0 in the commit, with the
  // envelope changes; a replaced body's chunks are written after the
  // original's, which the commit deletes.
  stored_size_ += header_bytes.size();
  stored_size_ -= milter_header_.size();
  if (milter_sender_changed_) edits_.envelope_from = envelope_from_;
  if (milter_rcpts_changed_) edits_.recipients = recipients_;
  if (milter_new_body_) {
    edits_.drop_first = 1;
    edits_.drop_last = seq_ - 1;
    stored_size_ = header_bytes.size() + milter_new_body_->size();
    chunk_ = std::move(*milter_new_body_);
  }
  edits_.header = std::move(header_bytes);
  flush_chunk(true);
}

}  // namespace wsmtp::listener
