// The command side of the SMTP conversation (RFC 5321 §4.1) and the handling of
// store results. The DATA side (dot-unstuffing, line endings, chunking) is in
// session_data.cpp. Replies come from the catalogue (smtp/replies.h), never literals.
#include "session.h"

#include <algorithm>
#include <charconv>

#include "address.h"
#include "log.h"
#include "smtp/replies.h"

namespace wsmtp::listener {

namespace replies = common::smtp::replies;

namespace {

std::string upper(std::string_view text) {
  std::string out(text);
  for (auto& ch : out)
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  return out;
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && upper(text.substr(0, prefix.size())) == prefix;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The HELO name ends up in the Received: header and the database, so it must be
// printable ASCII; RFC 5321 §4.1.4 lets us accept names that do not resolve.
bool printable(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char ch) { return ch >= 0x20 && ch < 0x7f; });
}

}  // namespace

Session::Session(const ListenerConfig& config, SessionContext context)
    : config_(config), context_(std::move(context)) {
  client_ip_ = context_.client.str();
  relay_allowed_ = config_.is_trusted(context_.client);
  reply(replies::greeting(config_.hostname));
}

void Session::on_line(std::string_view bytes, bool complete) {
  if (close_) return;
  if (waiting()) log::fatal("session fed input while a store op is outstanding (server bug)");
  if (phase_ == Phase::data) return data_piece(bytes, complete);

  if (!complete) {
    // The rest of an overlong line is skipped up to its LF, then answered once.
    discarding_line_ = true;
    return;
  }
  if (std::exchange(discarding_line_, false)) return error(replies::line_too_long());
  command_crlf_ = !bytes.empty() && bytes.back() == '\r';
  if (command_crlf_) bytes.remove_suffix(1);
  if (bytes.size() + 2 > kMaxCommandLine) return error(replies::line_too_long());
  log::debug("client={} < {}", client_ip_, bytes);
  command_line(bytes);
}

void Session::command_line(std::string_view line) {
  auto space = line.find(' ');
  std::string verb = upper(line.substr(0, space));
  std::string_view arg = space == std::string_view::npos ? std::string_view() : trim(line.substr(space + 1));

  if (verb == "EHLO" || verb == "HELO") return cmd_helo(arg, verb == "EHLO");
  if (verb == "MAIL") return cmd_mail(arg);
  if (verb == "RCPT") return cmd_rcpt(arg);
  if (verb == "DATA") return cmd_data(arg);
  if (verb == "RSET") {
    if (!arg.empty()) return error(replies::syntax_error("RSET"));
    reset_transaction();
    return reply(replies::reset_ok());
  }
  if (verb == "NOOP") return reply(replies::noop_ok());
  if (verb == "QUIT") {
    reply(replies::bye(config_.hostname));
    close_ = true;
    phase_ = Phase::closed;
    return;
  }
  // RFC 5321 §3.5.3: 252 without looking anything up (no address harvesting).
  if (verb == "VRFY") return arg.empty() ? error(replies::syntax_error("VRFY address")) : reply(replies::vrfy_cannot_verify());
  if (verb == "EXPN") return error(replies::expn_refused());
  if (verb == "HELP") return reply(replies::help());
  // A web browser tricked into talking to port 25 (cross-protocol attack): its
  // request lines must not be interpreted as SMTP, so hang up at once.
  if (verb == "GET" || verb == "POST" || verb == "CONNECT") {
    log::info("client={} non-SMTP command {}, disconnecting", client_ip_, verb);
    reply(replies::non_smtp_command());
    close_ = true;
    phase_ = Phase::closed;
    return;
  }
  error(replies::unknown_command());
}

void Session::cmd_helo(std::string_view arg, bool extended) {
  if (arg.empty() || !printable(arg)) return error(replies::syntax_error(extended ? "EHLO hostname" : "HELO hostname"));
  // RFC 5321 §4.1.4: a (second) EHLO/HELO resets the transaction like RSET.
  reset_transaction();
  helo_ = std::string(arg);
  esmtp_ = extended;
  phase_ = Phase::ready;
  if (!extended) return reply(replies::helo_ok(config_.hostname, helo_));
  // Only what is implemented is advertised (RFC 5321 §4.1.1.1).
  reply(replies::ehlo(config_.hostname, {"PIPELINING", fmt::format("SIZE {}", config_.max_message_size), "8BITMIME",
                                         "ENHANCEDSTATUSCODES"}));
}

void Session::cmd_mail(std::string_view arg) {
  if (phase_ == Phase::need_helo) return error(replies::need_helo());
  if (has_mail_) return error(replies::nested_mail());
  if (!iequals_prefix(arg, "FROM:")) return error(replies::syntax_error("MAIL FROM:<address>"));
  // "FROM: <a@b>" is not RFC syntax but common enough that refusing it only hurts.
  auto path = common::parse_path(trim(arg.substr(5)), /*allow_null=*/true, /*allow_utf8=*/false);
  if (path.error != common::PathError::none) return error(replies::bad_sender_syntax());
  if (!parse_mail_params(path.params)) return;
  has_mail_ = true;
  envelope_from_ = path.is_null ? std::string() : path.address.str();
  reply(replies::sender_ok());
}

// RFC 1870 SIZE=n and RFC 6152 BODY=7BIT|8BITMIME; anything else is 555 (RFC 5321
// §4.1.1.11). Sends the error reply itself and returns false on a problem.
bool Session::parse_mail_params(std::string_view params) {
  bool seen_size = false, seen_body = false;
  while (!(params = trim(params)).empty()) {
    auto end = params.find(' ');
    std::string_view param = params.substr(0, end);
    params = end == std::string_view::npos ? std::string_view() : params.substr(end);
    auto eq = param.find('=');
    std::string keyword = upper(param.substr(0, eq));
    std::string_view value = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    if (keyword == "SIZE" && !seen_size) {
      seen_size = true;
      std::uint64_t size = 0;
      auto r = std::from_chars(value.data(), value.data() + value.size(), size);
      if (value.empty() || value.size() > 20 || r.ec != std::errc() || r.ptr != value.data() + value.size()) {
        error(replies::syntax_error("SIZE=<number>"));
        return false;
      }
      if (size > config_.max_message_size) {
        error(replies::message_too_big(config_.max_message_size));
        return false;
      }
    } else if (keyword == "BODY" && !seen_body) {
      seen_body = true;
      auto body = upper(value);
      if (body != "7BIT" && body != "8BITMIME") {
        error(replies::syntax_error("BODY=7BIT or BODY=8BITMIME"));
        return false;
      }
    } else {
      error(replies::unknown_parameter(param.substr(0, eq)));
      return false;
    }
  }
  return true;
}

void Session::cmd_rcpt(std::string_view arg) {
  if (!has_mail_) return error(replies::need_mail());
  if (!iequals_prefix(arg, "TO:")) return error(replies::syntax_error("RCPT TO:<address>"));
  arg = trim(arg.substr(3));
  common::Address address;
  std::string_view params;
  // RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted; it means
  // postmaster@hostname, so hostname should be a local domain with that mailbox.
  if (iequals_prefix(arg, "<POSTMASTER>")) {
    address = common::Address{"postmaster", config_.hostname};
    params = trim(arg.substr(12));
  } else {
    auto path = common::parse_path(arg, /*allow_null=*/false, /*allow_utf8=*/false);
    if (path.error != common::PathError::none) return error(replies::bad_recipient_syntax());
    address = path.address;
    params = path.params;
  }
  if (!params.empty()) return error(replies::unknown_parameter(params.substr(0, params.find_first_of(" ="))));
  // RFC 5321 §4.5.3.1.10: 452 asks the client to send the rest in a later transaction.
  if (recipients_.size() >= config_.max_recipients) return reply(replies::too_many_recipients(config_.max_recipients));
  pending_recipient_ = address.str();
  auto key = address.lookup_key();
  issue(CheckRecipient{key, key.substr(key.rfind('@') + 1)}, Pending::recipient);
}

void Session::cmd_data(std::string_view arg) {
  if (!has_mail_) return error(replies::need_mail());
  if (!arg.empty()) return error(replies::syntax_error("DATA"));
  if (recipients_.empty()) return error(recipient_rejected_ ? replies::no_valid_recipients() : replies::need_rcpt());
  // The row is created before 354, so a database outage is a clean 451 here,
  // before the client has spent its bandwidth, and the Received: header can carry
  // the queue id.
  issue(BeginMessage{common::NewMessage{envelope_from_, client_ip_, helo_, context_.received_by, recipients_}},
        Pending::begin);
}

void Session::on_store_result(const StoreResult& result) {
  if (!waiting()) log::fatal("store result without an outstanding op (server bug)");
  Pending was = std::exchange(pending_, Pending::none);
  if (!result.ok) log::warn("client={} store op failed: {}", client_ip_, result.error);
  if (close_ || shutdown_pending_) return result_while_closing(was, result);

  switch (was) {
    case Pending::recipient:
      return recipient_result(result);
    case Pending::begin:
      if (!result.ok) {
        reset_transaction();
        return reply(replies::try_again_later());
      }
      return start_data(result.msg_id);
    case Pending::append:
      // The client is still sending; the answer waits for the end of the data.
      if (!result.ok) {
        outcome_ = DataOutcome::store_failed;
        chunk_.clear();
        abort_message_if_any();
      }
      return;
    case Pending::append_last:
      if (!result.ok) {
        reply(replies::try_again_later());
        abort_message_if_any();
        return reset_transaction();
      }
      return issue(CommitMessage{msg_id_, static_cast<std::int64_t>(stored_size_)}, Pending::commit);
    case Pending::commit:
      // DESIGN: 250 only once the transaction that set state 1 has committed.
      if (result.ok) {
        accepted();
      } else {
        reply(replies::try_again_later());
        abort_message_if_any();
      }
      return reset_transaction();
    case Pending::abort:
    case Pending::none:
      return;
  }
}

void Session::recipient_result(const StoreResult& result) {
  if (!result.ok) return reply(replies::try_again_later());
  switch (result.verdict) {
    case common::RecipientVerdict::known_local:
      break;
    case common::RecipientVerdict::unknown_local:
      // Rejected now rather than bounced later: no backscatter.
      recipient_rejected_ = true;
      log_rejected_recipient("unknown user");
      return error(replies::unknown_user());
    case common::RecipientVerdict::remote:
      if (relay_allowed_) break;
      recipient_rejected_ = true;
      log_rejected_recipient("relay denied");
      return error(replies::relay_denied());
  }
  recipients_.push_back(std::move(pending_recipient_));
  reply(replies::recipient_ok());
}

// The connection is gone or the server is stopping. Never commit a message the
// client cannot be told about; only a commit already under way may complete.
void Session::result_while_closing(Pending was, const StoreResult& result) {
  if (was == Pending::begin && result.ok) msg_id_ = result.msg_id;
  if (was == Pending::commit) {
    if (result.ok) {
      if (!disconnected_) accepted();
      msg_id_ = 0;
    }
  }
  if (close_) return abort_message_if_any();
  shut_down_now();
}

void Session::accepted() {
  log::info("msg={} accepted from=<{}> rcpts={} size={} client={}", msg_id_, envelope_from_, recipients_.size(),
            stored_size_, client_ip_);
  reply(replies::queued(msg_id_));
  msg_id_ = 0;
}

void Session::on_timeout() {
  if (close_) return;
  log::info("client={} timeout{}", client_ip_, in_data() ? " during DATA" : "");
  reply(replies::timeout(config_.hostname));
  close_ = true;
  phase_ = Phase::closed;
  abort_message_if_any();
}

void Session::on_shutdown() {
  if (close_) return;
  if (waiting()) {
    shutdown_pending_ = true;
    return;
  }
  shut_down_now();
}

void Session::shut_down_now() {
  abort_message_if_any();
  reply(replies::shutting_down(config_.hostname));
  close_ = true;
  phase_ = Phase::closed;
}

void Session::on_disconnect() {
  disconnected_ = true;
  close_ = true;
  phase_ = Phase::closed;
  abort_message_if_any();
}

std::string Session::take_output() { return std::exchange(output_, {}); }

std::optional<StoreOp> Session::take_store_op() { return std::exchange(op_, std::nullopt); }

void Session::issue(StoreOp op, Pending pending) {
  op_ = std::move(op);
  pending_ = pending;
}

// Best effort: if the abort fails the reaper deletes the state-0 row later. While
// another op is outstanding the abort is issued when it returns.
void Session::abort_message_if_any() {
  if (msg_id_ == 0 || waiting()) return;
  issue(AbortMessage{std::exchange(msg_id_, 0)}, Pending::abort);
}

void Session::reset_transaction() {
  has_mail_ = false;
  envelope_from_.clear();
  recipients_.clear();
  recipient_rejected_ = false;
  pending_recipient_.clear();
  std::string().swap(chunk_);  // give a 64 KiB buffer back between messages
  carry_.clear();
  seq_ = 0;
  body_size_ = stored_size_ = 0;
  outcome_ = DataOutcome::ok;
  if (phase_ == Phase::data) phase_ = Phase::ready;
}

void Session::reply(const common::smtp::Reply& r) {
  if (disconnected_) return;
  auto wire = r.wire();
  log::debug("client={} > {}", client_ip_, std::string_view(wire).substr(0, wire.size() - 2));
  output_ += wire;
}

void Session::error(const common::smtp::Reply& r) {
  reply(r);
  // Counting every refusal also limits directory harvesting through RCPT.
  if (++errors_ >= config_.max_errors && !close_) {
    log::info("client={} too many errors ({}), disconnecting", client_ip_, errors_);
    reply(replies::too_many_errors(config_.hostname));
    close_ = true;
    phase_ = Phase::closed;
  }
}

void Session::log_rejected_recipient(std::string_view reason) {
  log::info("reject RCPT from=<{}> to=<{}> client={} helo={}: {}", envelope_from_, pending_recipient_, client_ip_,
            helo_, reason);
}

}  // namespace wsmtp::listener
