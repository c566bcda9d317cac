// The command side of the SMTP conversation (RFC 5321 §4.1) and the handling of
// store results. STARTTLS and AUTH are in session_auth.cpp, DATA and BDAT in
// session_data.cpp. Replies come from the catalogue (replies.h), never literals.
#include "session.h"

#include <algorithm>
#include <charconv>

#include "address.h"
#include "ascii.h"
#include "backlog_watch.h"
#include "client_limits.h"
#include "log.h"
#include "printable.h"
#include "queue_id.h"
#include "placement.h"
#include "replies.h"

namespace wsmtp::listener {

namespace replies = common::smtp::replies;

namespace {

// The HELO name ends up in the Received: header and the database, so it must be
// printable ASCII; RFC 5321 §4.1.4 lets us accept names that do not resolve.
bool printable(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char ch) { return ch >= 0x20 && ch < 0x7f; });
}

// Local parts that ask a later hop to route elsewhere: "user%other", "other!user",
// and a quoted "user@other". Honouring them for an untrusted client would make
// us an open relay through any MTA that still interprets them (Postfix refuses
// them too: allow_untrusted_routing = no).
bool has_routing_syntax(std::string_view local) { return local.find_first_of("%!@") != std::string_view::npos; }

}  // namespace

Session::Session(std::shared_ptr<const ListenerConfig> config, SessionContext context)
    : config_owner_(std::move(config)), config_(*config_owner_), context_(std::move(context)) {
  client_ip_ = context_.client.str();
  trusted_ = config_.is_trusted(context_.client);
  limit_exempt_ = config_.is_limit_exempt(context_.client);
  client_key_ = limit_key(context_.client, config_.ipv6_limit_prefix);
  filter_.reset(config_.max_line_length);
  reply(replies::greeting(config_.hostname));
  // The greeting goes out at once; the first command waits for the milters' verdict on the connection.
  if (has_milters()) {
    auto connect = milter::make_event(milter::Stage::connect, connect_macros());
    connect.client_name = "[" + client_ip_ + "]";
    connect.family = context_.client.family == IpAddress::Family::v6 ? '6' : '4';
    connect.address = client_ip_;
    connect.port = context_.client_port;
    milter_await(std::move(connect), MilterWait::connect);
  }
}

void Session::on_line(std::string_view bytes, bool complete) {
  if (close_) return;
  if (waiting() || wants_tls() || raw_remaining() > 0)
    log::fatal("session fed a line while it cannot take one (server bug)");
  if (phase_ == Phase::data) return data_piece(bytes, complete);

  if (!complete) {
    // The rest of an overlong line is skipped up to its LF, then answered once.
    discarding_line_ = true;
    return;
  }
  if (std::exchange(discarding_line_, false)) {
    if (phase_ == Phase::auth) {
      auth_step_ = AuthStep::none;
      phase_ = Phase::ready;
    }
    return error(replies::line_too_long());
  }
  command_crlf_ = !bytes.empty() && bytes.back() == '\r';
  if (command_crlf_) bytes.remove_suffix(1);
  if (phase_ == Phase::auth) return auth_line(bytes);  // never logged: it carries credentials
  if (bytes.size() + 2 > kMaxCommandLine) return error(replies::line_too_long());
  if (common::istarts_with(bytes, "AUTH "))
    log::debug("client={} < AUTH (arguments not logged)", client_ip_);
  else
    log::debug("client={} < {}", client_ip_, common::printable(bytes));
  command_line(bytes);
}

void Session::command_line(std::string_view line) {
  auto space = line.find(' ');
  std::string verb = common::to_upper_ascii(line.substr(0, space));
  std::string_view arg =
      space == std::string_view::npos ? std::string_view() : common::trim_blanks(line.substr(space + 1));

  if (verb == "EHLO" || verb == "HELO") return cmd_helo(arg, verb == "EHLO");
  if (verb == "MAIL") return cmd_mail(arg);
  if (verb == "RCPT") return cmd_rcpt(arg);
  if (verb == "DATA") return cmd_data(arg);
  if (verb == "BDAT") return cmd_bdat(arg);
  if (verb == "STARTTLS") return cmd_starttls(arg);
  if (verb == "AUTH") return cmd_auth(arg);
  if (other_command(verb, arg)) return;
  // A web browser tricked into talking to port 25 (cross-protocol attack): its
  // request lines must not be interpreted as SMTP, so hang up at once.
  if (verb == "GET" || verb == "POST" || verb == "CONNECT") {
    log::info("client={} non-SMTP command {}, disconnecting", client_ip_, verb);
    return close_with(replies::non_smtp_command());
  }
  error(replies::unknown_command());
}

// The commands without a transaction of their own. Returns false for an unknown verb.
bool Session::other_command(const std::string& verb, std::string_view arg) {
  if (verb == "RSET") {
    if (!arg.empty()) {
      error(replies::syntax_error("RSET"));
    } else {
      reset_transaction();
      reply(replies::reset_ok());
    }
  } else if (verb == "NOOP") {
    reply(replies::noop_ok());
  } else if (verb == "QUIT") {
    close_with(replies::bye(config_.hostname));
  } else if (verb == "VRFY") {
    // RFC 5321 §3.5.3: 252 without looking anything up (no address harvesting).
    arg.empty() ? error(replies::syntax_error("VRFY address")) : reply(replies::vrfy_cannot_verify());
  } else if (verb == "EXPN") {
    error(replies::expn_refused());
  } else if (verb == "HELP") {
    reply(replies::help());
  } else {
    return false;
  }
  return true;
}

void Session::cmd_helo(std::string_view arg, bool extended) {
  if (arg.empty() || !printable(arg)) return error(replies::syntax_error(extended ? "EHLO hostname" : "HELO hostname"));
  // RFC 5321 §4.1.4: a (second) EHLO/HELO resets the transaction like RSET.
  reset_transaction();
  helo_ = std::string(arg);
  esmtp_ = extended;
  phase_ = Phase::ready;
  // A session the milters refused at connect keeps HELO working (as Postfix): MAIL gets the refusal.
  if (has_milters() && !milter_refusal_) {
    auto helo = milter::make_event(milter::Stage::helo, helo_macros());
    helo.text = helo_;
    return milter_await(std::move(helo), MilterWait::helo);
  }
  helo_reply();
}

void Session::helo_reply() {
  if (!esmtp_) return reply(replies::helo_ok(config_.hostname, helo_));
  // Only what is implemented is advertised (RFC 5321 §4.1.1.1); AUTH only under
  // TLS (RFC 4954 §4: no plaintext passwords on the wire).
  std::vector<std::string> extensions{"PIPELINING", fmt::format("SIZE {}", config_.max_message_size), "8BITMIME"};
  if (config_.tls_enabled() && !tls_active()) extensions.emplace_back("STARTTLS");
  if (tls_active() && !authenticated()) extensions.emplace_back("AUTH PLAIN LOGIN");
  extensions.emplace_back("ENHANCEDSTATUSCODES");
  extensions.emplace_back("SMTPUTF8");
  extensions.emplace_back("CHUNKING");
  reply(replies::ehlo(config_.hostname, extensions));
}

void Session::cmd_mail(std::string_view arg) {
  if (phase_ == Phase::need_helo) return error(replies::need_helo());
  if (has_mail_) return error(replies::nested_mail());
  if (!common::istarts_with(arg, "FROM:")) return error(replies::syntax_error("MAIL FROM:<address>"));
  // "FROM: <a@b>" is not RFC syntax but common enough that refusing it only hurts.
  auto path = common::parse_path(common::trim_blanks(arg.substr(5)), /*allow_null=*/true, /*allow_utf8=*/true);
  if (path.error != common::PathError::none) return error(replies::bad_sender_syntax());
  bool smtputf8 = false;
  if (!parse_mail_params(path.params, smtputf8)) return;
  // RFC 6531 §3.4: UTF-8 in the envelope only in a transaction that asked for it.
  if (!smtputf8 && !common::is_ascii(path.address.str())) return error(replies::utf8_needs_smtputf8());
  // RFC 5321 §4.2.5, RFC 3463 4.3.1: refused before any recipient, so a client
  // keeps the message and tries later, as with Postfix's queue_minfree. Not
  // counted as the client's error: it did nothing wrong.
  if (context_.queue_full && context_.queue_full->load(std::memory_order_relaxed)) {
    log::info("client={} MAIL refused: queue full", client_ip_);
    return reply(replies::queue_full());
  }
  envelope_from_ = path.is_null ? std::string() : path.address.str();
  backlog_keys_ = backlog_keys(sender_kind(), auth_user_, client_key_, envelope_from_);
  if (refuse_over_backlog("MAIL")) {
    envelope_from_.clear();
    backlog_keys_.clear();
    return;
  }
  if (milter_refusal_ || milter_helo_refusal_) {
    envelope_from_.clear();
    backlog_keys_.clear();
    return reply(milter_refusal_ ? *milter_refusal_ : *milter_helo_refusal_);
  }
  if (has_milters()) {
    milter_pending_smtputf8_ = smtputf8;
    return milter_mail(path.params);
  }
  has_mail_ = true;
  smtputf8_ = smtputf8;
  reply(replies::sender_ok());
}

// RFC 1870 SIZE=n, RFC 6152 BODY=7BIT|8BITMIME, RFC 6531 SMTPUTF8 and RFC 4954
// AUTH=<mailbox> (accepted and not relayed further); anything else is 555 (RFC
// 5321 §4.1.1.11). Sends the error reply itself and returns false on a problem.
bool Session::parse_mail_params(std::string_view params, bool& smtputf8) {
  bool seen_size = false, seen_body = false, seen_auth = false;
  while (!(params = common::trim_blanks(params)).empty()) {
    auto end = params.find(' ');
    std::string_view param = params.substr(0, end);
    params = end == std::string_view::npos ? std::string_view() : params.substr(end);
    auto eq = param.find('=');
    std::string keyword = common::to_upper_ascii(param.substr(0, eq));
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
      auto body = common::to_upper_ascii(value);
      if (body != "7BIT" && body != "8BITMIME") {
        error(replies::syntax_error("BODY=7BIT or BODY=8BITMIME"));
        return false;
      }
    } else if (keyword == "SMTPUTF8" && !smtputf8 && eq == std::string_view::npos) {
      smtputf8 = true;
    } else if (keyword == "AUTH" && !seen_auth && !value.empty()) {
      seen_auth = true;
    } else {
      error(replies::unknown_parameter(param.substr(0, eq)));
      return false;
    }
  }
  return true;
}

void Session::cmd_rcpt(std::string_view arg) {
  if (!has_mail_) return error(replies::need_mail());
  if (body_started_) return error(replies::bad_sequence("RCPT after BDAT"));
  if (!common::istarts_with(arg, "TO:")) return error(replies::syntax_error("RCPT TO:<address>"));
  arg = common::trim_blanks(arg.substr(3));
  // RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted, from
  // anyone; there is no domain to look up. It is stored as the bare
  // "postmaster", which the router sends to its configured postmaster.
  if (common::istarts_with(arg, "<POSTMASTER>")) {
    auto params = common::trim_blanks(arg.substr(12));
    if (!params.empty()) return error(replies::unknown_parameter(params.substr(0, params.find_first_of(" ="))));
    if (recipients_.size() >= config_.max_recipients)
      return reply(replies::too_many_recipients(config_.max_recipients));
    recipients_.emplace_back(common::kBarePostmaster);
    return reply(replies::recipient_ok());
  }
  auto path = common::parse_path(arg, /*allow_null=*/false, /*allow_utf8=*/true);
  if (path.error != common::PathError::none) return error(replies::bad_recipient_syntax());
  const common::Address& address = path.address;
  std::string_view params = path.params;
  if (!params.empty()) return error(replies::unknown_parameter(params.substr(0, params.find_first_of(" ="))));
  if (!smtputf8_ && !common::is_ascii(address.str())) return error(replies::utf8_needs_smtputf8());
  // RFC 5321 §4.5.3.1.10: 452 asks the client to send the rest in a later transaction.
  if (recipients_.size() >= config_.max_recipients) return reply(replies::too_many_recipients(config_.max_recipients));
  // The snapshot may have changed since MAIL: a long transaction, or a
  // pipelined batch of them, is stopped at its next recipient.
  if (refuse_over_backlog("RCPT")) {
    recipient_rejected_ = true;  // a pipelined DATA then gets 554 "no valid recipients"
    return;
  }
  pending_recipient_ = address.str();
  bool relay_allowed = trusted_ || authenticated();
  if (!relay_allowed && has_routing_syntax(address.local)) {
    recipient_rejected_ = true;
    log_rejected_recipient("routing syntax in local part");
    return error(replies::relay_denied());
  }
  auto key = address.lookup_key();
  pending_postmaster_ = common::is_postmaster_key(key);
  pending_our_postmaster_ = key == "postmaster@" + common::to_lower_ascii(config_.hostname);
  issue(CheckRecipient{key, key.substr(key.rfind('@') + 1)}, Pending::recipient);
}

void Session::on_store_result(const StoreResult& result) {
  if (!waiting()) log::fatal("store result without an outstanding op (server bug)");
  Pending was = std::exchange(pending_, Pending::none);
  if (!result.ok && queue_id_ != 0)
    log::warn("msg={} client={} store op failed: {}", common::qid(queue_id_), client_ip_, result.error);
  else if (!result.ok)
    log::warn("client={} store op failed: {}", client_ip_, result.error);
  if (close_ || shutdown_pending_) return result_while_closing(was, result);

  switch (was) {
    case Pending::recipient:
      return recipient_result(result);
    case Pending::verify:
      return verify_result(result);
    case Pending::queue_id_data:
    case Pending::queue_id_bdat:
      return queue_id_result(was, result);
    case Pending::begin:
    case Pending::append:
    case Pending::append_last:
    case Pending::commit:
    case Pending::store_whole:
      return append_result(was, result);
    case Pending::abort:
    case Pending::none:
    case Pending::milter:
      return;
  }
}

void Session::recipient_result(const StoreResult& result) {
  if (!result.ok) return reply(replies::try_again_later());
  switch (result.verdict) {
    case common::RecipientVerdict::known_local:
      break;
    case common::RecipientVerdict::full_local:
      // Queued, it could only wait for room or bounce days later (schema 019).
      // Transient, and not the client's error; the other recipients go on.
      recipient_rejected_ = true;
      log_rejected_recipient("mailbox full");
      return reply(replies::mailbox_full());
    case common::RecipientVerdict::unknown_local:
      // RFC 5321 §4.5.1: postmaster exists in every local domain, whatever
      // the directory says; the router finds it a mailbox.
      if (pending_postmaster_) break;
      // Rejected now rather than bounced later: no backscatter.
      recipient_rejected_ = true;
      log_rejected_recipient("unknown user");
      return error(replies::unknown_user());
    case common::RecipientVerdict::remote:
      // postmaster@ this host's own name, when that is no local domain, is
      // our postmaster too (never relayed, which would send it back here).
      if (pending_our_postmaster_) {
        pending_recipient_ = common::kBarePostmaster;
        break;
      }
      if (trusted_ || authenticated()) break;
      recipient_rejected_ = true;
      log_rejected_recipient("relay denied");
      return error(replies::relay_denied());
  }
  if (has_milters()) return milter_rcpt();
  recipients_.push_back(std::move(pending_recipient_));
  reply(replies::recipient_ok());
}

// The connection is gone or the server is stopping. Never commit a message the
// client cannot be told about; only a commit already under way may complete.
void Session::result_while_closing(Pending was, const StoreResult& result) {
  if (was == Pending::begin && result.ok) msg_id_ = queue_id_;
  if ((was == Pending::commit || was == Pending::store_whole) && result.ok) {
    if (!disconnected_) accepted();
    msg_id_ = 0;
  }
  if (close_) return abort_message_if_any();
  shut_down_now();
}

void Session::accepted() {
  std::string shard;
  if (context_.placement && context_.placement->size() > 1)
    shard = " shard=" + context_.placement->name_of_message(queue_id_);
  log::info("msg={} accepted from=<{}> rcpts={} size={} client={}{}{}{}", common::qid(queue_id_),
            common::printable(envelope_from_), recipients_.size(), stored_size_, client_ip_, tls_active() ? " tls" : "",
            authenticated() ? " auth=" + common::printable(auth_user_) : std::string(), shard);
  reply(replies::queued(queue_id_));
  msg_id_ = 0;
}

void Session::on_timeout() {
  if (close_) return;
  if (in_data() && queue_id_ != 0)
    log::info("msg={} client={} timeout during DATA", common::qid(queue_id_), client_ip_);
  else
    log::info("client={} timeout", client_ip_);
  close_with(replies::timeout(config_.hostname));
  abort_message_if_any();
}

void Session::on_deadline(Deadlines::Kind kind) {
  if (close_ || kind == Deadlines::Kind::none) return;
  if (waiting()) log::fatal("deadline checked while the session waits for the store (server bug)");
  switch (kind) {
    case Deadlines::Kind::command:
      log::info("client={} command line not complete within {}s, disconnecting", client_ip_,
                config_.command_deadline.count());
      close_with(replies::command_too_slow(config_.hostname));
      break;
    case Deadlines::Kind::data:
      log::info("msg={} client={} message data slower than {} bytes/s, disconnecting", common::qid(queue_id_),
                client_ip_, config_.min_data_rate);
      close_with(replies::data_too_slow(config_.hostname));
      break;
    case Deadlines::Kind::session:
      log::info("client={} session longer than {}s, disconnecting", client_ip_, config_.max_session_time.count());
      close_with(replies::session_too_long(config_.hostname));
      break;
    case Deadlines::Kind::none:
      break;
  }
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
  close_with(replies::shutting_down(config_.hostname));
}

void Session::on_disconnect() {
  disconnected_ = true;
  close_ = true;
  phase_ = Phase::closed;
  // A milter's verdict is not waited for by a session that is gone (the chain goes with the connection).
  if (pending_ == Pending::milter) {
    pending_ = Pending::none;
    milter_wait_ = MilterWait::none;
  }
  abort_message_if_any();
}

void Session::close_with(const common::smtp::Reply& r) {
  reply(r);
  close_ = true;
  phase_ = Phase::closed;
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
  milter_abort_if_in_message();
  milter_discard_ = false;
  milter_headers_sent_ = false;
  header_end_ = milter_sent_ = 0;
  std::string().swap(milter_header_);
  edits_ = {};
  finishing_ = false;
  milter_turn_ = 0;
  milter_stream_all_ = false;
  milter_edited_header_.reset();
  milter_new_body_.reset();
  milter_sender_changed_ = milter_rcpts_changed_ = false;
  has_mail_ = false;
  queue_id_ = 0;  // never reused: a retried message gets a new one
  smtputf8_ = false;
  envelope_from_.clear();
  recipients_.clear();
  backlog_keys_.clear();
  recipient_rejected_ = false;
  pending_recipient_.clear();
  body_started_ = false;
  std::string().swap(chunk_);  // give a 64 KiB buffer back between messages
  carry_.clear();
  seq_ = 0;
  body_size_ = stored_size_ = 0;
  outcome_ = DataOutcome::ok;
  bdat_done_pending_ = false;
  filter_.reset(config_.max_line_length);
  if (phase_ == Phase::data || phase_ == Phase::bdat) phase_ = Phase::ready;
}

void Session::reply(const common::smtp::Reply& r) {
  if (disconnected_) return;
  auto wire = r.wire();
  log::debug("client={} > {}", client_ip_, std::string_view(wire).substr(0, wire.size() - 2));
  output_ += wire;
}

void Session::error(const common::smtp::Reply& r) {
  reply(r);
  // Counting every refusal also limits directory harvesting through RCPT. A
  // client in limit_exceptions (a local application) is neither cut off nor
  // slowed down for its mistakes.
  ++errors_;
  if (limit_exempt_) return;
  if (errors_ >= config_.max_errors && !close_) {
    log::info("client={} too many errors ({}), disconnecting", client_ip_, errors_);
    return close_with(replies::too_many_errors(config_.hostname));
  }
  // Postfix-style tarpit: past a few errors every further one costs the client time.
  if (errors_ >= config_.tarpit_after_errors) tarpit_ = config_.tarpit_delay;
}

SenderKind Session::sender_kind() const {
  if (authenticated()) return SenderKind::authenticated;
  return trusted_ || limit_exempt_ ? SenderKind::trusted : SenderKind::other;
}

// RFC 3463 4.7.1 and transient: the sender may try again once its mail has
// been delivered. Not counted as the client's error (it did nothing wrong).
bool Session::refuse_over_backlog(std::string_view command) {
  if (!context_.backlogs) return false;
  auto totals = context_.backlogs->snapshot();
  if (totals->empty()) return false;
  auto over = over_quota(*totals, backlog_keys_, sender_kind(), config_.backlog_quotas);
  if (!over) return false;
  log::info("client={} {} refused from=<{}>: backlog of {} is {} (quota {})", client_ip_, command,
            common::printable(envelope_from_), common::printable(over->key), over->total, over->quota);
  reply(replies::backlog_over_quota(backlog_subject(over->key)));
  return true;
}

// Mail from authenticated, trusted and limit-exempt sessions advances no client
// clock (schema 020): on a host whose local mail all comes from 127.0.0.1, one
// local sender's flood would otherwise push every other local sender back.
std::string Session::fair_client() const { return sender_kind() == SenderKind::other ? client_ip_ : std::string(); }

common::NewMessage Session::new_message() const {
  return common::NewMessage{envelope_from_, client_ip_,    helo_,        context_.received_by,
                            recipients_,    backlog_keys_, fair_client()};
}

void Session::log_rejected_recipient(std::string_view reason) {
  log::info("reject RCPT from=<{}> to=<{}> client={} helo={}: {}", common::printable(envelope_from_),
            common::printable(pending_recipient_), client_ip_, common::printable(helo_), reason);
}

}  // namespace wsmtp::listener
