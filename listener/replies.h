// The catalogue of every reply the listener sends. Session code names a reply
// (replies::bad_sequence()) instead of spelling codes, so codes, enhanced codes
// (RFC 3463) and wording are reviewed in one place.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/reply.h"

namespace wsmtp::common::smtp::replies {

Reply greeting(std::string_view hostname);
Reply helo_ok(std::string_view hostname, std::string_view client_helo);
Reply ehlo(std::string_view hostname, const std::vector<std::string>& extensions);
Reply ok();
Reply sender_ok();
Reply recipient_ok();
Reply start_data();
Reply queued(std::int64_t msg_id);
Reply reset_ok();
Reply noop_ok();
Reply bye(std::string_view hostname);
Reply vrfy_cannot_verify();
Reply expn_refused();
Reply help();

Reply unknown_command();
Reply line_too_long();
Reply bad_sequence(std::string_view why);
Reply syntax_error(std::string_view why);
Reply bad_sender_syntax();
Reply bad_recipient_syntax();
Reply unknown_parameter(std::string_view param);
Reply need_helo();
Reply nested_mail();
Reply need_mail();
Reply need_rcpt();

Reply unknown_user();
Reply relay_denied();
Reply too_many_recipients(std::size_t limit);
Reply message_too_big(std::uint64_t limit);
Reply bare_newline_rejected();
Reply try_again_later();
// Milters (Postfix's texts, so clients and admins see what they know).
Reply milter_command_rejected();
Reply milter_content_rejected();
Reply milter_tempfail();
Reply milter_shutdown(std::string_view hostname);
Reply milter_header_too_big(std::size_t limit);
// No queue shard can take a message now (all unreachable or drained), at DATA/BDAT.
Reply no_queue_available();
// The queue database reached [listener] queue_max_size (RFC 3463 4.3.1), at MAIL.
Reply queue_full();
// Backpressure (RFC 3463 4.7.1, delivery not authorized for now): too much of
// `subject`'s mail is waiting for delivery, at MAIL or RCPT.
Reply backlog_over_quota(std::string_view subject);
// A local mailbox the deliverer last found over its quota (RFC 3463 4.2.2), at RCPT.
Reply mailbox_full();
Reply too_many_errors(std::string_view hostname);
Reply timeout(std::string_view hostname);
// The deadlines a trickling client cannot push back (listener/deadlines.h):
// RFC 3463 X.4.2 "bad connection", as for an idle timeout.
Reply command_too_slow(std::string_view hostname);
Reply data_too_slow(std::string_view hostname);
Reply session_too_long(std::string_view hostname);
Reply shutting_down(std::string_view hostname);
Reply too_many_connections(std::string_view hostname);

// DATA after RCPTs that were all refused (as opposed to no RCPT at all: need_rcpt).
Reply no_valid_recipients();
// A line such as "GET / HTTP/1.1": the peer is not an SMTP client; we hang up.
Reply non_smtp_command();

// --- STARTTLS (RFC 3207), AUTH (RFC 4954), CHUNKING (RFC 3030), SMTPUTF8 (RFC 6531)
Reply starttls_ready();
Reply tls_not_available();
Reply tls_already_active();
Reply auth_challenge(std::string_view base64_text);  // 334; text "" for an empty challenge
Reply auth_ok();
Reply auth_failed();
// RFC 4954 §6: the credentials could not be checked right now (database down).
Reply auth_temporary_failure();
Reply auth_cancelled();
Reply auth_bad_base64();
Reply auth_need_tls();
Reply auth_not_enabled();
Reply auth_already_done();
Reply auth_unknown_mechanism();
Reply too_many_auth_failures(std::string_view hostname);
Reply auth_blocked_for_address(std::string_view hostname);
Reply chunk_received(std::uint64_t octets);
Reply utf8_needs_smtputf8();
// The message carried more Received: headers than the hop limit (RFC 5321 §6.3).
Reply mail_loop(int hops);
// A text line in the message longer than the limit (RFC 5321 §4.5.3.1.6).
Reply data_line_too_long(std::size_t limit);
Reply connection_rate_exceeded(std::string_view hostname);

}  // namespace wsmtp::common::smtp::replies
