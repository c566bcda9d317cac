// What the milter protocol says about each Stage for one negotiated milter:
// whether it is sent (SMFIP_NO*), whether it is answered (SMFIP_NR_*), its
// timeout, its packets (macros first, filtered by SMFIR_SETSYMLIST) and which
// modifications the milter may make (SMFIF_*). Pure: no sockets, no state.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "milter/event.h"
#include "milter/milter_spec.h"
#include "milter/protocol.h"

namespace wsmtp::listener::milter {

// "connect", "end_of_message", ...: for log lines.
std::string_view stage_name(Stage stage);
// A stage that belongs to one message (mail to end_of_message; abort ends it).
bool message_stage(Stage stage);
// The milter asked us not to send this stage (abort and end_of_message are
// always sent).
bool stage_off(Stage stage, const Negotiation& negotiation);
// The milter replies to this stage (abort never; SMFIP_NR_* turn others off).
bool stage_answered(Stage stage, const Negotiation& negotiation);
// command_timeout for connect/helo/mail/rcpt/data/abort, content_timeout for
// header/end_of_headers/body/end_of_message (Postfix's split).
std::chrono::milliseconds stage_timeout(Stage stage, const MilterSpec& spec);
// The macros to send: those named in `wanted` ("{a} b {c}", braces optional
// on either side), or all of them when the milter named none for the stage.
Macros wanted_macros(const Macros& macros, const std::optional<std::string>& wanted);
// SMFIC_MACRO (when there are macros for this stage) followed by the stage's
// command, as this milter negotiated it: a header value loses its one leading
// space unless the milter asked for header_leading_space, and its CRLF folds
// become "\n" (libmilter's convention). A body event must be at most
// kMaxBodyChunk bytes (Chain splits bigger ones). Throws std::invalid_argument
// from the encoders (a bigger body, MAIL or RCPT without an address).
std::string stage_packets(const Event& event, const Negotiation& negotiation);
// An end-of-message modification the milter negotiated (SMFIF_*); false for
// every kind that is not a modification.
bool modification_allowed(Reply::Kind kind, std::uint32_t actions);

}  // namespace wsmtp::listener::milter
