// What a Session asks of its milters and what it gets back, as values: the
// session (pure, no I/O) emits Events, the loop hands them to the
// connection's Chain, and the Chain answers each awaited Event with a Verdict.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "milter/protocol.h"
#include "smtp/reply.h"

namespace wsmtp::listener::milter {

enum class Stage {
  connect,         // once, when the session starts
  helo,            // each HELO/EHLO
  mail,            // MAIL FROM (starts a message for the milters)
  rcpt,            // each RCPT TO that we accepted
  data,            // DATA, or the first BDAT
  header,          // one header field of the message
  end_of_headers,  // the blank line
  body,            // a piece of the body, at most kMaxBodyChunk bytes, CRLF line ends
  end_of_message,  // the final dot or BDAT LAST: the verdict and the changes
  abort,           // the message ends without end_of_message (RSET, refusal, new MAIL)
};

struct Event {
  Stage stage = Stage::connect;
  // The session waits for this event's Verdict (connect, helo, mail, rcpt,
  // data, end_of_message). header, end_of_headers, body and abort are not
  // awaited: a milter's refusal there comes back with end_of_message.
  bool awaited = false;
  // The macros the session knows at this stage, every one it has; the chain
  // sends each milter those it asked for (SMFIR_SETSYMLIST) or all of them.
  Macros macros;
  // connect: client_name ("[addr]" without reverse DNS), family '4'/'6', port, address.
  std::string client_name;
  char family = '4';
  std::uint16_t port = 0;
  std::string address;
  // helo: the name. header: text = name, value = value as the milters want it
  // (leading space and folding as received; the chain strips the one leading
  // space unless the milter negotiated header_leading_space).
  std::string text;
  std::string value;
  // mail, rcpt: "<address>" then ESMTP parameters.
  std::vector<std::string> args;
  // body: the bytes.
  std::string bytes;
  // For this milter only (its index in [listener] milters), -1 for all. The
  // session gives a later milter the message content again, with the earlier
  // milters' changes, once they have finished (as Postfix does), so a DMARC
  // milter sees a DKIM milter's Authentication-Results. The others pass it as
  // if they had continued.
  int milter = -1;
};

inline Event make_event(Stage stage, Macros macros = {}, int milter = -1) {
  Event event;
  event.stage = stage;
  event.macros = std::move(macros);
  event.milter = milter;
  return event;
}

struct Verdict {
  enum class Kind {
    proceed,   // go on (every milter continued or accepted)
    reject,    // 5xx: the command (or message) is refused
    tempfail,  // 4xx
    discard,   // the message is accepted with 250 and thrown away
    shutdown,  // 421 and close the connection (SMFIR_SHUTDOWN, SMFIR_CONN_FAIL)
  };
  Kind kind = Kind::proceed;
  // The milter's own SMTP reply (SMFIR_REPLYCODE), when it gave one; else the
  // session uses the standard text for kind.
  std::optional<common::smtp::Reply> reply;
  std::string milter;  // MilterSpec::name of the milter that decided, for logs
  // end_of_message with kind proceed: the changes, in milter order and, per
  // milter, in the order it sent them. Only add_header, insert_header,
  // change_header, add_rcpt, add_rcpt_with_args, delete_rcpt, change_from,
  // replace_body (its chunks in order) and quarantine appear here, and only
  // those the milter negotiated.
  std::vector<Reply> changes;
  // Which milter made each change (same index as changes), for logs and show.
  std::vector<std::string> changed_by;
};

}  // namespace wsmtp::listener::milter
