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
Reply too_many_errors(std::string_view hostname);
Reply timeout(std::string_view hostname);
Reply shutting_down(std::string_view hostname);
Reply too_many_connections(std::string_view hostname);

// DATA after RCPTs that were all refused (as opposed to no RCPT at all: need_rcpt).
Reply no_valid_recipients();
// A line such as "GET / HTTP/1.1": the peer is not an SMTP client; we hang up.
Reply non_smtp_command();

}  // namespace wsmtp::common::smtp::replies
