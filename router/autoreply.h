// Vacation replies by RFC 3834: which mail may be answered at all (never the
// null sender, automatic or bulk mail, list mail, MAILER-DAEMON/owner-*/
// *-request senders, nor mail not addressed to the mailbox itself), and the
// reply message (Auto-Submitted: auto-replied, In-Reply-To, References). Pure:
// the once-per-sender record is pg::claim_autoreply, the clock is a parameter.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

#include "mail/headers.h"

namespace wsmtp::router {

// RFC 3834 §2 sender rules; sender is the envelope sender's lookup form.
bool autoreply_sender_excluded(const std::string& sender);

// RFC 3834 §2 message rules: Auto-Submitted other than "no", Precedence
// bulk/list/junk, any List-* header (RFC 2369/2919), X-Loop.
bool autoreply_message_excluded(const common::mail::HeaderBlock& headers);

// The mailbox (or the address the sender used for it, e.g. an alias) appears
// in To: or Cc:, i.e. the sender wrote to it directly (RFC 3834 §2).
bool autoreply_direct_recipient(const common::mail::HeaderBlock& headers, const std::string& mailbox,
                                const std::string& original_rcpt);

struct AutoReplyMessage {
  std::string from;        // the mailbox
  std::string to;          // the original envelope sender
  std::string subject;     // configured subject; "" -> "Auto: " + the original subject
  std::string text;        // configured body text (LF or CRLF line ends)
  std::string hostname;    // for Message-ID
  std::string message_id;  // unique left part of the new Message-ID
  std::time_t now = 0;
};

// The whole reply message, CRLF line ends, ready for create_generated_message.
std::string compose_autoreply(const AutoReplyMessage& reply, const common::mail::HeaderBlock& original);

}  // namespace wsmtp::router
