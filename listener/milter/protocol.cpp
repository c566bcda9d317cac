// The milter protocol's bytes: packets we send and replies we read, checked
// against what Sendmail's libmilter and Postfix's milter8 exchange. Knows
// nothing of sockets, timeouts or what a reply means at a given stage (that is
// chain.cpp); it only refuses what no well-behaved milter sends, before any of
// it can reach a stored message or a log line.
#include "milter/protocol.h"

#include <algorithm>

#include <fmt/format.h>

namespace wsmtp::listener::milter {

namespace {

void put_u32(std::string& out, std::uint32_t value) {
  out += static_cast<char>(value >> 24 & 0xff);
  out += static_cast<char>(value >> 16 & 0xff);
  out += static_cast<char>(value >> 8 & 0xff);
  out += static_cast<char>(value & 0xff);
}

std::uint32_t get_u32(std::string_view bytes) {
  auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])); };
  return byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
}

// A milter string ends at its NUL, so a NUL inside ours (a client may put one
// in HELO or a header) would shift every later field: the milter gets what
// precedes it, as it would from an MTA written in C.
void put_string(std::string& out, std::string_view text) {
  out += text.substr(0, text.find('\0'));
  out += '\0';
}

std::string packet(Command command, std::string_view payload) {
  std::string out;
  out.reserve(5 + payload.size());
  put_u32(out, static_cast<std::uint32_t>(payload.size() + 1));
  out += static_cast<char>(command);
  out += payload;
  return out;
}

std::string args_packet(Command command, const std::vector<std::string>& args) {
  if (args.empty()) throw std::invalid_argument("milter MAIL/RCPT without an address");
  std::string payload;
  for (const auto& arg : args) put_string(payload, arg);
  return packet(command, payload);
}

// For error messages: the milter's bytes themselves never go into a log line.
std::string reply_name(char command) {
  switch (command) {
    case 'a':
      return "SMFIR_ACCEPT";
    case 'c':
      return "SMFIR_CONTINUE";
    case 'd':
      return "SMFIR_DISCARD";
    case 'r':
      return "SMFIR_REJECT";
    case 't':
      return "SMFIR_TEMPFAIL";
    case 'y':
      return "SMFIR_REPLYCODE";
    case 's':
      return "SMFIR_SKIP";
    case 'p':
      return "SMFIR_PROGRESS";
    case 'f':
      return "SMFIR_CONN_FAIL";
    case '4':
      return "SMFIR_SHUTDOWN";
    case 'h':
      return "SMFIR_ADDHEADER";
    case 'i':
      return "SMFIR_INSHEADER";
    case 'm':
      return "SMFIR_CHGHEADER";
    case '+':
      return "SMFIR_ADDRCPT";
    case '2':
      return "SMFIR_ADDRCPT_PAR";
    case '-':
      return "SMFIR_DELRCPT";
    case 'e':
      return "SMFIR_CHGFROM";
    case 'b':
      return "SMFIR_REPLBODY";
    case 'q':
      return "SMFIR_QUARANTINE";
    case 'O':
      return "SMFIC_OPTNEG";
  }
  return fmt::format("unknown reply command 0x{:02x}", static_cast<unsigned char>(command));
}

// Reads one reply's payload field by field; every shortfall names the field.
class Fields {
 public:
  Fields(char command, std::string_view payload) : command_(command), rest_(payload) {}

  [[noreturn]] void fail(std::string_view what) const {
    throw ProtocolError(fmt::format("{}: {}", reply_name(command_), what));
  }

  std::uint32_t u32(std::string_view field) {
    if (rest_.size() < 4) fail(fmt::format("{} cut short ({} of 4 bytes)", field, rest_.size()));
    auto value = get_u32(rest_);
    rest_.remove_prefix(4);
    return value;
  }
  std::string_view string(std::string_view field) {
    auto nul = rest_.find('\0');
    if (nul == std::string_view::npos) fail(fmt::format("{} without its terminating NUL", field));
    auto value = rest_.substr(0, nul);
    rest_.remove_prefix(nul + 1);
    return value;
  }
  bool done() const { return rest_.empty(); }
  void end() const {
    if (!rest_.empty()) fail(fmt::format("{} unexpected bytes after the last field", rest_.size()));
  }
  std::string_view take_rest() { return std::exchange(rest_, std::string_view()); }

 private:
  char command_;
  std::string_view rest_;
};

// RFC 5322 §3.6.8 field name: printable US-ASCII but ':'. Anything else would
// make the stored header section unparseable or split one field into two.
void check_header_name(const Fields& fields, std::string_view name) {
  if (name.empty()) fields.fail("empty header name");
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == ':') fields.fail("header name with a character not allowed in a field name");
  }
}

// libmilter folds a value with "\n" before the next line's white space
// (smfi_addheader(3)); a line break not followed by SP/HTAB would start a new
// header field or end the header section, in mail we store. A CRLF fold is
// taken too and kept as "\n", so the value has one line-end convention.
std::string header_value(const Fields& fields, std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '\r') {
      if (i + 1 == value.size() || value[i + 1] != '\n') fields.fail("header value with a CR not before LF");
      continue;
    }
    if (c == '\n' && (i + 1 == value.size() || (value[i + 1] != ' ' && value[i + 1] != '\t')))
      fields.fail("header value with a line break not followed by white space");
    out += c;
  }
  return out;
}

// An envelope address or ESMTP argument string: one line of the envelope.
std::string one_line(const Fields& fields, std::string_view text, std::string_view field, bool may_be_empty) {
  if (!may_be_empty && text.empty()) fields.fail(fmt::format("empty {}", field));
  if (text.find_first_of("\r\n") != std::string_view::npos) fields.fail(fmt::format("{} with CR or LF", field));
  return std::string(text);
}

void parse_header(Fields& fields, Reply& reply) {
  reply.name = fields.string("header name");
  check_header_name(fields, reply.name);
  reply.value = header_value(fields, fields.string("header value"));
  fields.end();
}

// The address, then (SMFIR_ADDRCPT_PAR, SMFIR_CHGFROM) optional ESMTP
// arguments: libmilter sends them only when the milter gave some, and rspamd's
// SMFIR_CHGFROM never does.
void parse_address(Fields& fields, Reply& reply, bool with_args) {
  reply.address = one_line(fields, fields.string("address"), "address", false);
  if (with_args && !fields.done())
    reply.args = one_line(fields, fields.string("ESMTP arguments"), "ESMTP arguments", true);
  fields.end();
}

// "550 5.7.1 text", or smfi_setmlreply's lines joined by CRLF
// ("550-5.7.1 a\r\n550 5.7.1 b"). Like Postfix, an enhanced code must be of
// the reply's class; unlike a 2xx or 3xx, only a refusal is a verdict.
void parse_reply_code(Fields& fields, Reply& reply) {
  std::string_view text = fields.string("reply text");
  fields.end();
  std::vector<std::string> lines;
  while (true) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos) fields.fail("reply text with a CR not before LF");
    if (line.size() > 4 && line[4] >= '0' && line[4] <= '9' && line[4] != line[0])
      fields.fail("enhanced status code of another class than the reply code");
    lines.emplace_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  auto parsed = common::smtp::parse_reply(lines);
  if (!parsed) fields.fail("reply text is not an SMTP reply");
  if (parsed->code < 400) fields.fail(fmt::format("reply code {} is not a 4xx or 5xx refusal", parsed->code));
  reply.smtp = std::move(*parsed);
}

// Version, actions and steps, then libmilter's SMFIR_SETSYMLIST entries
// (milter_addsymlist in libmilter/engine.c): each a 32-bit stage index and
// the NUL-terminated, space-separated macro names for that stage.
void parse_negotiation(Fields& fields, Reply& reply) {
  auto& negotiation = reply.negotiation;
  negotiation.version = fields.u32("version");
  negotiation.actions = fields.u32("actions");
  negotiation.steps = fields.u32("protocol steps");
  while (!fields.done()) {
    auto stage = fields.u32("macro list stage");
    if (stage >= static_cast<std::uint32_t>(kMacroStages))
      fields.fail(fmt::format("macro list for unknown stage {}", stage));
    auto names = fields.string("macro list");
    auto& list = negotiation.macro_lists[stage];
    if (list) fields.fail(fmt::format("two macro lists for stage {}", stage));
    list = std::string(names);
  }
}

}  // namespace

std::string encode_negotiate(std::uint32_t version, std::uint32_t actions, std::uint32_t steps) {
  std::string payload;
  put_u32(payload, version);
  put_u32(payload, actions);
  put_u32(payload, steps);
  return packet(Command::negotiate, payload);
}

std::string encode_macros(Command for_command, const Macros& macros) {
  std::string payload(1, static_cast<char>(for_command));
  for (const auto& [name, value] : macros) {
    put_string(payload, name);
    put_string(payload, value);
  }
  return packet(Command::macro, payload);
}

std::string encode_connect(std::string_view hostname, char family, std::uint16_t port, std::string_view address) {
  std::string payload;
  put_string(payload, hostname);
  payload += family;
  switch (family) {
    case '4':
    case '6':
    case 'L':
      payload += static_cast<char>(port >> 8 & 0xff);
      payload += static_cast<char>(port & 0xff);
      put_string(payload, address);
      break;
    case 'U':
      break;
    default:
      throw std::invalid_argument(fmt::format("milter connect: unknown address family '{}'", family));
  }
  return packet(Command::connect, payload);
}

std::string encode_helo(std::string_view helo) {
  std::string payload;
  put_string(payload, helo);
  return packet(Command::helo, payload);
}

std::string encode_mail(const std::vector<std::string>& args) { return args_packet(Command::mail, args); }

std::string encode_rcpt(const std::vector<std::string>& args) { return args_packet(Command::rcpt, args); }

std::string encode_header(std::string_view name, std::string_view value) {
  std::string payload;
  put_string(payload, name);
  put_string(payload, value);
  return packet(Command::header, payload);
}

std::string encode_body(std::string_view chunk) {
  if (chunk.size() > kMaxBodyChunk)
    throw std::invalid_argument(fmt::format("milter body chunk of {} bytes (at most {})", chunk.size(), kMaxBodyChunk));
  return packet(Command::body, chunk);
}

std::string encode_bare(Command command) {
  switch (command) {
    case Command::data:
    case Command::end_of_headers:
    case Command::end_of_body:
    case Command::abort:
    case Command::quit:
    case Command::quit_new_connection:
      return packet(command, {});
    default:
      throw std::invalid_argument(fmt::format("milter command '{}' has a payload", static_cast<char>(command)));
  }
}

Reply parse_reply(char command, std::string_view payload) {
  Fields fields(command, payload);
  Reply reply;
  switch (command) {
    case 'a':
    case 'c':
    case 'd':
    case 'r':
    case 't':
    case 's':
    case 'p':
    case 'f':
    case '4':
      fields.end();
      break;
    case 'y':
      parse_reply_code(fields, reply);
      break;
    case 'h':
      parse_header(fields, reply);
      break;
    case 'i':
      reply.index = fields.u32("header index");
      parse_header(fields, reply);
      break;
    case 'm':
      // Sendmail takes index 0 as the first occurrence, and Postfix follows.
      reply.index = std::max<std::uint32_t>(fields.u32("header index"), 1);
      parse_header(fields, reply);
      break;
    case '+':
    case '-':
      parse_address(fields, reply, false);
      break;
    case '2':
    case 'e':
      parse_address(fields, reply, true);
      break;
    case 'b':
      reply.body = std::string(fields.take_rest());
      break;
    case 'q':
      reply.reason = one_line(fields, fields.string("reason"), "quarantine reason", false);
      fields.end();
      break;
    case 'O':
      parse_negotiation(fields, reply);
      break;
    default:
      fields.fail("not a reply a milter may send");
  }
  reply.kind = static_cast<Reply::Kind>(command);
  return reply;
}

void PacketReader::feed(std::string_view bytes) {
  // Drop what next() has consumed before growing, so the buffer holds at most
  // one partial packet plus what one read brings.
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_ += bytes;
}

std::optional<Reply> PacketReader::next() {
  std::string_view rest = std::string_view(buffer_).substr(consumed_);
  if (rest.size() < 4) return std::nullopt;
  auto length = get_u32(rest);
  if (length == 0) throw ProtocolError("milter packet of length 0 (no command byte)");
  if (length > kMaxReplyPacket)
    throw ProtocolError(fmt::format("milter packet of {} bytes (at most {})", length, kMaxReplyPacket));
  if (rest.size() - 4 < length) return std::nullopt;
  char command = rest[4];
  std::string_view payload = rest.substr(5, length - 1);
  consumed_ += 4 + length;
  auto reply = parse_reply(command, payload);
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  return reply;
}

}  // namespace wsmtp::listener::milter
