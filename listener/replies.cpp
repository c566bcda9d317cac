// Codes follow RFC 5321 §4.2.2-§4.2.3 and enhanced codes RFC 3463; wording follows
// common practice (Postfix) so admins recognise the messages in their logs.
#include "replies.h"

#include <fmt/format.h>

#include "queue_id.h"
#include "printable.h"

namespace wsmtp::common::smtp::replies {

namespace {
Reply r(int code, int c, int s, int d, std::string text) { return Reply{code, {c, s, d}, std::move(text)}; }
}  // namespace

// The greeting and EHLO's first line carry no enhanced code (RFC 2034 §3).
Reply greeting(std::string_view hostname) { return Reply{220, {}, fmt::format("{} ESMTP WSMTP", hostname)}; }
Reply helo_ok(std::string_view hostname, std::string_view) { return Reply{250, {}, std::string(hostname)}; }
Reply ehlo(std::string_view hostname, const std::vector<std::string>& extensions) {
  std::string text(hostname);
  for (const auto& e : extensions) text += "\n" + e;
  return Reply{250, {}, text};
}
Reply ok() { return r(250, 2, 0, 0, "Ok"); }
Reply sender_ok() { return r(250, 2, 1, 0, "Sender ok"); }
Reply recipient_ok() { return r(250, 2, 1, 5, "Recipient ok"); }
Reply start_data() { return Reply{354, {}, "End data with <CR><LF>.<CR><LF>"}; }
// The queue id, as in the Received: header and the logs, so the sender can quote it.
Reply queued(std::int64_t msg_id) { return r(250, 2, 0, 0, fmt::format("Ok: queued as {}", qid(msg_id))); }
Reply reset_ok() { return r(250, 2, 0, 0, "Ok"); }
Reply noop_ok() { return r(250, 2, 0, 0, "Ok"); }
Reply bye(std::string_view hostname) { return r(221, 2, 0, 0, fmt::format("{} closing connection", hostname)); }
// RFC 5321 §3.5.3: 252 when we will accept but will not verify (no user enumeration).
Reply vrfy_cannot_verify() { return r(252, 2, 0, 0, "Cannot VRFY user, but will accept message and attempt delivery"); }
Reply expn_refused() { return r(502, 5, 5, 1, "EXPN not available"); }
Reply help() { return r(214, 2, 0, 0, "See RFC 5321"); }

Reply unknown_command() { return r(500, 5, 5, 1, "Error: command not recognized"); }
Reply line_too_long() { return r(500, 5, 5, 2, "Error: line too long"); }
Reply bad_sequence(std::string_view why) { return r(503, 5, 5, 1, fmt::format("Error: {}", why)); }
Reply syntax_error(std::string_view why) { return r(501, 5, 5, 4, fmt::format("Syntax: {}", why)); }
Reply bad_sender_syntax() { return r(501, 5, 1, 7, "Bad sender address syntax"); }
Reply bad_recipient_syntax() { return r(501, 5, 1, 3, "Bad recipient address syntax"); }
Reply unknown_parameter(std::string_view param) {
  // The parameter is the client's: no control byte of its goes back on the wire.
  return r(555, 5, 5, 4, fmt::format("Unsupported option: {}", common::printable(param)));
}
Reply need_helo() { return bad_sequence("send HELO/EHLO first"); }
Reply nested_mail() { return bad_sequence("nested MAIL command"); }
Reply need_mail() { return bad_sequence("need MAIL command"); }
Reply need_rcpt() { return bad_sequence("need RCPT command"); }

Reply unknown_user() { return r(550, 5, 1, 1, "Recipient address rejected: User unknown"); }
Reply relay_denied() { return r(554, 5, 7, 1, "Relay access denied"); }
Reply too_many_recipients(std::size_t limit) {
  return r(452, 4, 5, 3, fmt::format("Error: too many recipients (limit {})", limit));
}
Reply message_too_big(std::uint64_t limit) {
  return r(552, 5, 3, 4, fmt::format("Error: message exceeds fixed maximum message size of {} bytes", limit));
}
Reply bare_newline_rejected() { return r(554, 5, 5, 2, "Error: bare <LF> received in message data"); }
Reply try_again_later() { return r(451, 4, 3, 0, "Error: queue file write error, try again later"); }
Reply milter_command_rejected() { return r(550, 5, 7, 1, "Command rejected"); }
Reply milter_content_rejected() { return r(550, 5, 7, 1, "Message content rejected"); }
Reply milter_tempfail() { return r(451, 4, 7, 1, "Service unavailable - try again later"); }
Reply milter_shutdown(std::string_view hostname) {
  return r(421, 4, 7, 0, fmt::format("{} Service unavailable - closing connection", hostname));
}
Reply milter_header_too_big(std::size_t limit) {
  return r(552, 5, 3, 4, fmt::format("Error: message header section exceeds {} bytes", limit));
}
Reply no_queue_available() { return r(451, 4, 3, 0, "Error: no queue database is available, try again later"); }
Reply queue_full() { return r(452, 4, 3, 1, "Insufficient system storage"); }
Reply backlog_over_quota(std::string_view subject) {
  return r(451, 4, 7, 1,
           fmt::format("Too much mail from {} is waiting for delivery, try again later", common::printable(subject)));
}
Reply mailbox_full() { return r(452, 4, 2, 2, "Mailbox full, try again later"); }
Reply too_many_errors(std::string_view hostname) {
  return r(421, 4, 7, 0, fmt::format("{} Error: too many errors", hostname));
}
Reply timeout(std::string_view hostname) {
  return r(421, 4, 4, 2, fmt::format("{} Error: timeout exceeded", hostname));
}
Reply command_too_slow(std::string_view hostname) {
  return r(421, 4, 4, 2, fmt::format("{} Error: command line not received in time, closing connection", hostname));
}
Reply data_too_slow(std::string_view hostname) {
  return r(421, 4, 4, 2, fmt::format("{} Error: message data arriving too slowly, closing connection", hostname));
}
Reply session_too_long(std::string_view hostname) {
  return r(421, 4, 4, 2, fmt::format("{} Error: session time limit exceeded, closing connection", hostname));
}
Reply shutting_down(std::string_view hostname) {
  return r(421, 4, 3, 2, fmt::format("{} Service shutting down, closing transmission channel", hostname));
}
Reply too_many_connections(std::string_view hostname) {
  return r(421, 4, 7, 0, fmt::format("{} Error: too many connections", hostname));
}

Reply no_valid_recipients() { return r(554, 5, 5, 1, "Error: no valid recipients"); }
// 221 rather than 5xx: we are closing the channel (RFC 5321 §3.8) and a browser
// shows nothing anyway.
Reply non_smtp_command() { return r(221, 2, 7, 0, "Error: this is an SMTP server, closing connection"); }

Reply starttls_ready() { return r(220, 2, 0, 0, "Ready to start TLS"); }
Reply tls_not_available() { return r(454, 4, 7, 0, "TLS not available"); }
Reply tls_already_active() { return bad_sequence("TLS already active"); }
// RFC 4954 §4: "334 " followed by the base64 challenge, without an enhanced code.
Reply auth_challenge(std::string_view base64_text) { return Reply{334, {}, std::string(base64_text)}; }
Reply auth_ok() { return r(235, 2, 7, 0, "Authentication successful"); }
Reply auth_failed() { return r(535, 5, 7, 8, "Error: authentication failed"); }
Reply auth_temporary_failure() { return r(454, 4, 7, 0, "Temporary authentication failure"); }
Reply auth_cancelled() { return r(501, 5, 7, 0, "Authentication aborted"); }
Reply auth_bad_base64() { return r(501, 5, 5, 2, "Cannot decode response"); }
// RFC 4954 §4 and RFC 3207: 530 5.7.0 asks for STARTTLS first.
Reply auth_need_tls() { return r(530, 5, 7, 0, "Must issue a STARTTLS command first"); }
Reply auth_not_enabled() { return bad_sequence("authentication not enabled"); }
Reply auth_already_done() { return bad_sequence("already authenticated"); }
Reply auth_unknown_mechanism() { return r(504, 5, 5, 4, "Unrecognized authentication type"); }
Reply too_many_auth_failures(std::string_view hostname) {
  return r(421, 4, 7, 0, fmt::format("{} Error: too many authentication failures", hostname));
}
// Postfix answers its AUTH rate limit the same way: 421 and the session ends.
Reply auth_blocked_for_address(std::string_view hostname) {
  return r(421, 4, 7, 0, fmt::format("{} Error: too many failed authentications from your address", hostname));
}
Reply chunk_received(std::uint64_t octets) { return r(250, 2, 0, 0, fmt::format("{} octets received", octets)); }
// RFC 6531 §3.5: a non-ASCII address in a transaction that did not ask for SMTPUTF8.
Reply utf8_needs_smtputf8() { return r(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8"); }
Reply mail_loop(int hops) { return r(554, 5, 4, 6, fmt::format("Error: too many hops ({} Received: headers)", hops)); }
// RFC 5321 §4.5.3.1.10 names "500 Line too long" for this case.
Reply data_line_too_long(std::size_t limit) {
  return r(500, 5, 5, 2, fmt::format("Error: message has a line longer than {} octets", limit));
}
Reply connection_rate_exceeded(std::string_view hostname) {
  return r(421, 4, 7, 0, fmt::format("{} Error: too many connections from your address, try again later", hostname));
}

}  // namespace wsmtp::common::smtp::replies
