// The milter protocol, version 6, as Sendmail's libmilter speaks it (the MTA
// side): packet framing, the commands we send and the replies we read, as
// values. Pure: no sockets, no event loop; chain.cpp does the I/O. Every
// packet is a 4-byte big-endian length (the command byte included), the
// command byte and its payload; strings are NUL-terminated.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smtp/reply.h"

namespace wsmtp::listener::milter {

// Anything a milter sends that is not a well-formed reply for the moment it
// arrives: the connection to that milter is then given up (its default action).
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr std::uint32_t kVersion = 6;
// libmilter refuses packets above 64 KiB + its own slack by default; a body
// chunk we send carries at most this many bytes.
constexpr std::size_t kMaxBodyChunk = 65535;
// The largest reply we accept (a replacement body chunk or a long header); a
// bigger length is garbage, not a reason to allocate.
constexpr std::size_t kMaxReplyPacket = 1024 * 1024;

// Commands, MTA to milter (SMFIC_*).
enum class Command : char {
  abort = 'A',
  body = 'B',
  connect = 'C',
  macro = 'D',
  end_of_body = 'E',
  helo = 'H',
  quit_new_connection = 'K',
  header = 'L',
  mail = 'M',
  end_of_headers = 'N',
  negotiate = 'O',
  quit = 'Q',
  rcpt = 'R',
  data = 'T',
  unknown = 'U',
};

// Actions the milter may ask for (SMFIF_*), offered in negotiation.
namespace action {
constexpr std::uint32_t add_headers = 0x01;
constexpr std::uint32_t change_body = 0x02;
constexpr std::uint32_t add_rcpt = 0x04;
constexpr std::uint32_t delete_rcpt = 0x08;
constexpr std::uint32_t change_headers = 0x10;
constexpr std::uint32_t quarantine = 0x20;
constexpr std::uint32_t change_from = 0x40;
constexpr std::uint32_t add_rcpt_with_args = 0x80;
constexpr std::uint32_t set_macro_list = 0x100;
constexpr std::uint32_t all = 0x1ff;
}  // namespace action

// Protocol steps (SMFIP_*): "no" = do not send that stage; "no reply" = send
// it but the milter will not answer.
namespace step {
constexpr std::uint32_t no_connect = 0x1;
constexpr std::uint32_t no_helo = 0x2;
constexpr std::uint32_t no_mail = 0x4;
constexpr std::uint32_t no_rcpt = 0x8;
constexpr std::uint32_t no_body = 0x10;
constexpr std::uint32_t no_headers = 0x20;
constexpr std::uint32_t no_end_of_headers = 0x40;
constexpr std::uint32_t no_reply_header = 0x80;
constexpr std::uint32_t no_unknown = 0x100;
constexpr std::uint32_t no_data = 0x200;
constexpr std::uint32_t skip = 0x400;           // the milter may answer a body chunk with SMFIR_SKIP
constexpr std::uint32_t rcpt_rejected = 0x800;  // also send rejected recipients
constexpr std::uint32_t no_reply_connect = 0x1000;
constexpr std::uint32_t no_reply_helo = 0x2000;
constexpr std::uint32_t no_reply_mail = 0x4000;
constexpr std::uint32_t no_reply_rcpt = 0x8000;
constexpr std::uint32_t no_reply_data = 0x10000;
constexpr std::uint32_t no_reply_unknown = 0x20000;
constexpr std::uint32_t no_reply_end_of_headers = 0x40000;
constexpr std::uint32_t no_reply_body = 0x80000;
constexpr std::uint32_t header_leading_space = 0x100000;
// What we offer: every step above (we send every stage it does not turn off).
constexpr std::uint32_t all_we_offer = 0x1fffff;
}  // namespace step

// Where a macro list applies (SMFIM_*), the index into Negotiation::macro_lists.
enum class MacroStage : int {
  connect = 0,
  helo = 1,
  mail = 2,
  rcpt = 3,
  data = 4,
  end_of_message = 5,
  end_of_headers = 6
};
constexpr int kMacroStages = 7;

using Macros = std::vector<std::pair<std::string, std::string>>;  // name ("j", "{client_addr}"), value

// --- Encoding: each returns one complete packet ------------------------------

std::string encode_negotiate(std::uint32_t version, std::uint32_t actions, std::uint32_t steps);
// SMFIC_MACRO for the command about to be sent (`for_command`), e.g. connect.
std::string encode_macros(Command for_command, const Macros& macros);
// family: '4' inet, '6' inet6, 'L' unix socket, 'U' unknown (then no port/address).
std::string encode_connect(std::string_view hostname, char family, std::uint16_t port, std::string_view address);
std::string encode_helo(std::string_view helo);
// args[0] is "<address>" (angle brackets included), then ESMTP parameters.
std::string encode_mail(const std::vector<std::string>& args);
std::string encode_rcpt(const std::vector<std::string>& args);
std::string encode_header(std::string_view name, std::string_view value);
// At most kMaxBodyChunk bytes (std::invalid_argument otherwise).
std::string encode_body(std::string_view chunk);
// data, end_of_headers, end_of_body, abort, quit, quit_new_connection.
std::string encode_bare(Command command);

// --- Replies ---------------------------------------------------------------

// The milter's answer to our negotiation: what it wants of us.
struct Negotiation {
  std::uint32_t version = 0;
  std::uint32_t actions = 0;  // SMFIF_*
  std::uint32_t steps = 0;    // SMFIP_*
  // SMFIR_SETSYMLIST inside the negotiation reply: per MacroStage, the macro
  // names the milter wants ("{auth_type} {client_addr}"), empty when it names none.
  std::array<std::optional<std::string>, kMacroStages> macro_lists{};
};

struct Reply {
  enum class Kind : char {
    // verdicts
    accept = 'a',
    continue_ = 'c',
    discard = 'd',
    reject = 'r',
    tempfail = 't',
    reply_code = 'y',  // reject or tempfail with the milter's own text: see `reply`
    skip = 's',        // no more body chunks, please
    progress = 'p',    // still working: restart the timeout, wait on
    conn_fail = 'f',   // drop the SMTP connection (treated as tempfail by us)
    shutdown = '4',    // drop the SMTP connection (as Postfix: 421)
    // end-of-message modifications
    add_header = 'h',
    insert_header = 'i',
    change_header = 'm',
    add_rcpt = '+',
    add_rcpt_with_args = '2',
    delete_rcpt = '-',
    change_from = 'e',
    replace_body = 'b',
    quarantine = 'q',
    // the answer to SMFIC_OPTNEG
    negotiate = 'O',
  };
  Kind kind = Kind::continue_;
  // reply_code: the parsed SMTP reply, always 4xx or 5xx (a 2xx or garbage is a ProtocolError).
  common::smtp::Reply smtp;
  // headers: name and value (value with "\n" line folds as the milter sent them, a CRLF fold as "\n");
  // insert_header: index = position (0 = first); change_header: index = which
  // occurrence of the name (1-based), an empty value deletes that header.
  std::string name;
  std::string value;
  std::uint32_t index = 0;
  // add_rcpt, delete_rcpt, change_from: the address as sent (usually "<a@b>");
  // add_rcpt_with_args, change_from: the ESMTP arguments after it ("" if none).
  std::string address;
  std::string args;
  std::string body;         // replace_body: one chunk of the new body
  std::string reason;       // quarantine
  Negotiation negotiation;  // negotiate
};

// Parses one reply packet's command byte and payload (the framing is
// PacketReader's). Throws ProtocolError for an unknown command byte or a
// payload that is malformed for it (missing NULs, short integers, a
// reply_code that is not a 4xx/5xx SMTP reply, ...).
Reply parse_reply(char command, std::string_view payload);

// Splits the byte stream from one milter into packets.
class PacketReader {
 public:
  // Appends bytes read from the socket.
  void feed(std::string_view bytes);
  // The next complete reply, if one has arrived. Throws ProtocolError for a
  // zero or over-kMaxReplyPacket length, or from parse_reply.
  std::optional<Reply> next();
  std::size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::string buffer_;
  std::size_t consumed_ = 0;
};

}  // namespace wsmtp::listener::milter
