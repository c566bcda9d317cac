// libFuzzer target for what a milter sends us (listener/milter/protocol.cpp:
// PacketReader, parse_reply): the input is the byte stream from one milter.
// Fed whole and fed in small pieces, it must give the same replies and the
// same refusal; whatever parses must be safe to apply to stored mail (header
// names and folds that cannot add a field, one-line addresses and reasons, a
// 4xx/5xx reply whose wire form parses back), a reader drained to nothing
// holds less than one packet, and our encoders frame any string they are given.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "milter/protocol.h"

namespace {

using namespace wsmtp::listener::milter;

// A broken property is a crash, named by its line for the reproducer's reader.
void check(bool ok, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "property failed: %s:%d\n", file, line);
  std::abort();
}

bool one_line(std::string_view text) { return text.find_first_of(std::string_view("\r\n\0", 3)) == text.npos; }

void check_header(const Reply& reply) {
  check(!reply.name.empty());
  for (char c : reply.name) check(c > 32 && c < 127 && c != ':');
  const auto& value = reply.value;
  check(value.find('\r') == value.npos && value.find('\0') == value.npos);
  for (std::size_t at = value.find('\n'); at != value.npos; at = value.find('\n', at + 1))
    check(at + 1 < value.size() && (value[at + 1] == ' ' || value[at + 1] == '\t'));
}

std::vector<std::string> wire_lines(const std::string& wire) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < wire.size()) {
    auto end = wire.find("\r\n", pos);
    check(end != wire.npos);
    lines.push_back(wire.substr(pos, end - pos));
    pos = end + 2;
  }
  return lines;
}

void check_reply(const Reply& reply) {
  using Kind = Reply::Kind;
  switch (reply.kind) {
    case Kind::reply_code: {
      const auto& smtp = reply.smtp;
      check(smtp.code >= 400 && smtp.code <= 599);
      check(!smtp.status.present() || smtp.status.cls == smtp.code / 100);
      check(smtp.text.find('\r') == std::string::npos);
      auto again = wsmtp::common::smtp::parse_reply(wire_lines(smtp.wire()));
      check(again && again->code == smtp.code);
      if (smtp.status.present()) check(again->status == smtp.status && again->text == smtp.text);
      break;
    }
    case Kind::add_header:
    case Kind::insert_header:
      check_header(reply);
      break;
    case Kind::change_header:
      check_header(reply);
      check(reply.index >= 1);
      break;
    case Kind::add_rcpt:
    case Kind::delete_rcpt:
    case Kind::add_rcpt_with_args:
    case Kind::change_from:
      check(!reply.address.empty() && one_line(reply.address) && one_line(reply.args));
      break;
    case Kind::quarantine:
      check(!reply.reason.empty() && one_line(reply.reason));
      break;
    case Kind::replace_body:
      check(reply.body.size() < kMaxReplyPacket);
      break;
    case Kind::negotiate:
      for (const auto& list : reply.negotiation.macro_lists)
        if (list) check(list->find('\0') == std::string::npos);
      break;
    case Kind::accept:
    case Kind::continue_:
    case Kind::discard:
    case Kind::reject:
    case Kind::tempfail:
    case Kind::skip:
    case Kind::progress:
    case Kind::conn_fail:
    case Kind::shutdown:
      break;
    default:
      check(false);
  }
}

// What a reader makes of the stream: each reply's fields, then whether it
// stopped on a refusal.
struct Outcome {
  std::vector<std::string> replies;
  bool refused = false;
  bool operator==(const Outcome&) const = default;
};

std::string summary(const Reply& reply) {
  std::string out(1, static_cast<char>(reply.kind));
  for (const auto* field : {&reply.name, &reply.value, &reply.address, &reply.args, &reply.body, &reply.reason})
    out += std::to_string(field->size()) + ":" + *field;
  out += std::to_string(reply.index) + "|" + reply.smtp.wire();
  const auto& n = reply.negotiation;
  out += std::to_string(n.version) + "," + std::to_string(n.actions) + "," + std::to_string(n.steps);
  for (const auto& list : n.macro_lists) out += list ? "+" + *list + '\0' : "-";
  return out;
}

Outcome read_all(std::string_view bytes, std::size_t piece) {
  Outcome outcome;
  PacketReader reader;
  try {
    for (std::size_t at = 0; at < bytes.size(); at += piece) {
      reader.feed(bytes.substr(at, piece));
      while (auto reply = reader.next()) {
        check_reply(*reply);
        outcome.replies.push_back(summary(*reply));
      }
      // Drained: at most one packet's header and part of its payload is left.
      check(reader.buffered() < 4 + kMaxReplyPacket);
    }
  } catch (const ProtocolError&) {
    outcome.refused = true;
  }
  return outcome;
}

// Our own packets: a length that counts exactly what follows, and every
// string ending at its one NUL whatever bytes it was given.
void check_encoders(std::string_view text) {
  auto framed = [](const std::string& packet, char command, std::size_t nuls) {
    check(packet.size() >= 5 && packet[4] == command);
    auto length = static_cast<std::uint32_t>(static_cast<unsigned char>(packet[0])) << 24 |
                  static_cast<std::uint32_t>(static_cast<unsigned char>(packet[1])) << 16 |
                  static_cast<std::uint32_t>(static_cast<unsigned char>(packet[2])) << 8 |
                  static_cast<unsigned char>(packet[3]);
    check(length == packet.size() - 4);
    std::size_t count = 0;
    for (char c : std::string_view(packet).substr(5)) count += c == '\0';
    check(count == nuls && packet.back() == '\0');
  };
  framed(encode_helo(text), 'H', 1);
  framed(encode_header(text, text), 'L', 2);
  framed(encode_mail({std::string(text), std::string(text)}), 'M', 2);
  if (text.size() <= kMaxBodyChunk) {
    auto body = encode_body(text);
    check(body.size() == 5 + text.size() && body.substr(5) == text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto whole = read_all(bytes, bytes.size() + 1);
  auto pieces = read_all(bytes, 1 + size % 13);
  check(whole == pieces);
  // Also the bytes as one packet's payload under the first byte as command.
  if (size > 0) {
    try {
      check_reply(parse_reply(bytes[0], bytes.substr(1)));
    } catch (const ProtocolError&) {
    }
  }
  check_encoders(bytes);
  return 0;
}
