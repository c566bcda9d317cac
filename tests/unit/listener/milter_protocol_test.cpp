// The milter codec against exact bytes: what we send, every reply we read, the
// framing at any split point, and every malformed reply refused.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "milter/protocol.h"

namespace wsmtp::listener::milter {

using namespace std::string_literals;

namespace {

// One reply packet as a milter writes it.
std::string packet(char command, const std::string& payload) {
  auto length = static_cast<std::uint32_t>(payload.size() + 1);
  std::string out;
  out += static_cast<char>(length >> 24);
  out += static_cast<char>(length >> 16 & 0xff);
  out += static_cast<char>(length >> 8 & 0xff);
  out += static_cast<char>(length & 0xff);
  out += command;
  return out + payload;
}

std::string be32(std::uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16 & 0xff), static_cast<char>(value >> 8 & 0xff),
          static_cast<char>(value & 0xff)};
}

}  // namespace

// ---- encoding ----------------------------------------------------------------

TEST_CASE("negotiation as Postfix sends it", "[milter]") {
  // Postfix 3's SMFIC_OPTNEG payload as captured by purepythonmilter's tests
  // (tests/protocol/test_commands.py, "normal modern postfix"): version 6,
  // every action, every protocol step; what we offer is the same.
  CHECK(encode_negotiate(kVersion, action::all, step::all_we_offer) ==
        "\x00\x00\x00\x0d"
        "O"
        "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff"s);
  CHECK(encode_negotiate(2, 0x3f, 0x7f) == "\x00\x00\x00\x0dO\x00\x00\x00\x02\x00\x00\x00\x3f\x00\x00\x00\x7f"s);
}

TEST_CASE("macros for a command", "[milter]") {
  // Postfix's SMFIC_MACRO for connect, from the same capture.
  CHECK(encode_macros(Command::connect, {{"j", "myhost.sub.example.com"}, {"{daemon_addr}", "172.17.0.2"}}) ==
        "\x00\x00\x00\x34"
        "D"
        "Cj\x00myhost.sub.example.com\x00{daemon_addr}\x00"
        "172.17.0.2\x00"s);
  CHECK(encode_macros(Command::end_of_body, {{"i", "4CgSNs"}}) ==
        "\x00\x00\x00\x0b"
        "DEi\x00"
        "4CgSNs\x00"s);
  CHECK(encode_macros(Command::helo, {}) ==
        "\x00\x00\x00\x02"
        "DH"s);
  CHECK(encode_macros(Command::mail, {{"{auth_authen}", ""}}) ==
        "\x00\x00\x00\x11"
        "DM{auth_authen}\x00\x00"s);
}

TEST_CASE("connect for each address family", "[milter]") {
  // The inet and inet6 payloads are Postfix's, from the same capture (ports 49974 and 41750).
  CHECK(encode_connect("[172.17.0.1]", '4', 49974, "172.17.0.1") ==
        "\x00\x00\x00\x1c"
        "C[172.17.0.1]\x00"
        "4\xc3"
        "6172.17.0.1\x00"s);
  CHECK(encode_connect("[2607:f8b0:4864:20::748]", '6', 41750, "2607:f8b0:4864:20::748") ==
        "\x00\x00\x00\x34"
        "C[2607:f8b0:4864:20::748]\x00"
        "6\xa3\x16"
        "2607:f8b0:4864:20::748\x00"s);
  CHECK(encode_connect("localhost", 'L', 0, "/run/wsmtp.sock") ==
        "\x00\x00\x00\x1e"
        "Clocalhost\x00L\x00\x00/run/wsmtp.sock\x00"s);
  CHECK(encode_connect("unknown", 'U', 25, "ignored") ==
        "\x00\x00\x00\x0a"
        "Cunknown\x00U"s);
  CHECK_THROWS_AS(encode_connect("x", '5', 25, "1.2.3.4"), std::invalid_argument);
}

TEST_CASE("the envelope and header commands", "[milter]") {
  CHECK(encode_helo("mail.example.org") ==
        "\x00\x00\x00\x12"
        "Hmail.example.org\x00"s);
  CHECK(encode_helo("") ==
        "\x00\x00\x00\x02"
        "H\x00"s);
  CHECK(encode_mail({"<a@example.org>"}) ==
        "\x00\x00\x00\x11"
        "M<a@example.org>\x00"s);
  CHECK(encode_mail({"<>", "BODY=8BITMIME", "SMTPUTF8"}) ==
        "\x00\x00\x00\x1b"
        "M<>\x00"
        "BODY=8BITMIME\x00SMTPUTF8\x00"s);
  CHECK(encode_rcpt({"<b@example.org>", "NOTIFY=NEVER"}) ==
        "\x00\x00\x00\x1e"
        "R<b@example.org>\x00NOTIFY=NEVER\x00"s);
  CHECK_THROWS_AS(encode_mail({}), std::invalid_argument);
  CHECK_THROWS_AS(encode_rcpt({}), std::invalid_argument);
  CHECK(encode_header("Subject", "hi\n there") ==
        "\x00\x00\x00\x13"
        "LSubject\x00hi\n there\x00"s);
  CHECK(encode_header("X-Empty", "") ==
        "\x00\x00\x00\x0a"
        "LX-Empty\x00\x00"s);
}

TEST_CASE("a NUL inside a string ends it, so it cannot shift the fields after it", "[milter]") {
  CHECK(encode_helo("evil\0PART"s) == encode_helo("evil"));
  CHECK(encode_mail({"<a@b>\0FAKE=1"s, "SIZE=10"}) == encode_mail({"<a@b>", "SIZE=10"}));
  CHECK(encode_header("X-A\0b"s, "v\0w"s) == encode_header("X-A", "v"));
  CHECK(encode_macros(Command::rcpt, {{"{rcpt_addr}", "a\0b"s}}) ==
        encode_macros(Command::rcpt, {{"{rcpt_addr}", "a"}}));
}

TEST_CASE("body chunks carry raw bytes up to the limit", "[milter]") {
  CHECK(encode_body("line\r\n\0bin"s) ==
        "\x00\x00\x00\x0b"
        "Bline\r\n\0bin"s);
  CHECK(encode_body("") ==
        "\x00\x00\x00\x01"
        "B"s);
  std::string full(kMaxBodyChunk, 'x');
  auto packet = encode_body(full);
  CHECK(packet.size() == 5 + kMaxBodyChunk);
  CHECK(packet.substr(0, 5) ==
        "\x00\x01\x00\x00"
        "B"s);
  CHECK_THROWS_AS(encode_body(std::string(kMaxBodyChunk + 1, 'x')), std::invalid_argument);
}

TEST_CASE("commands without a payload", "[milter]") {
  struct Row {
    Command command;
    const char* letter;
  };
  auto row = GENERATE(values<Row>({{Command::data, "T"},
                                   {Command::end_of_headers, "N"},
                                   {Command::end_of_body, "E"},
                                   {Command::abort, "A"},
                                   {Command::quit, "Q"},
                                   {Command::quit_new_connection, "K"}}));
  CHECK(encode_bare(row.command) == "\x00\x00\x00\x01"s + row.letter);
  CHECK_THROWS_AS(encode_bare(Command::helo), std::invalid_argument);
  CHECK_THROWS_AS(encode_bare(Command::body), std::invalid_argument);
}

// ---- replies -----------------------------------------------------------------

TEST_CASE("verdicts without a payload", "[milter]") {
  struct Row {
    char command;
    Reply::Kind kind;
  };
  auto row = GENERATE(values<Row>({{'a', Reply::Kind::accept},
                                   {'c', Reply::Kind::continue_},
                                   {'d', Reply::Kind::discard},
                                   {'r', Reply::Kind::reject},
                                   {'t', Reply::Kind::tempfail},
                                   {'s', Reply::Kind::skip},
                                   {'p', Reply::Kind::progress},
                                   {'f', Reply::Kind::conn_fail},
                                   {'4', Reply::Kind::shutdown}}));
  CHECK(parse_reply(row.command, "").kind == row.kind);
  CHECK_THROWS_WITH(parse_reply(row.command, "x"), Catch::Contains("unexpected bytes after the last field"));
}

TEST_CASE("a reply code, one line or several", "[milter]") {
  // smfi_setreply(ctx, "550", "5.7.1", "Gtube pattern")
  auto one = parse_reply('y', "550 5.7.1 Gtube pattern\0"s);
  CHECK(one.kind == Reply::Kind::reply_code);
  CHECK(one.smtp.code == 550);
  CHECK(one.smtp.status == common::smtp::EnhancedCode{5, 7, 1});
  CHECK(one.smtp.text == "Gtube pattern");

  // smfi_setmlreply: lines joined by CRLF, no CRLF after the last.
  auto lines = parse_reply('y', "451-4.7.1 try\r\n451-4.7.1 again\r\n451 4.7.1 later\0"s);
  CHECK(lines.smtp.code == 451);
  CHECK(lines.smtp.is_transient());
  CHECK(lines.smtp.text == "try\nagain\nlater");

  // smfi_setreply without an enhanced code or without a text.
  auto bare = parse_reply('y', "554 \0"s);
  CHECK(bare.smtp.code == 554);
  CHECK_FALSE(bare.smtp.status.present());
  CHECK(parse_reply('y', "421 4.7.0\0"s).smtp.status == common::smtp::EnhancedCode{4, 7, 0});
  CHECK(parse_reply('y', "550 rejected\0"s).smtp.text == "rejected");
}

TEST_CASE("header changes", "[milter]") {
  auto add = parse_reply('h', "X-Spam\0Yes\0"s);
  CHECK(add.kind == Reply::Kind::add_header);
  CHECK(add.name == "X-Spam");
  CHECK(add.value == "Yes");

  // libmilter folds with "\n" and white space; a CRLF fold is kept as "\n".
  auto folded = parse_reply('h', "DKIM-Signature\0v=1; a=rsa-sha256;\n\tb=abc\0"s);
  CHECK(folded.value == "v=1; a=rsa-sha256;\n\tb=abc");
  CHECK(parse_reply('h', "X-R\0a\r\n b\0"s).value == "a\n b");
  CHECK(parse_reply('h', "X-Empty\0\0"s).value.empty());

  auto insert = parse_reply('i', be32(0) + "Authentication-Results\0mx; dkim=pass\0"s);
  CHECK(insert.kind == Reply::Kind::insert_header);
  CHECK(insert.index == 0);
  CHECK(insert.name == "Authentication-Results");
  CHECK(insert.value == "mx; dkim=pass");
  CHECK(parse_reply('i', be32(7) + "X-A\0b\0"s).index == 7);

  auto change = parse_reply('m', be32(2) + "Subject\0[SPAM] hi\0"s);
  CHECK(change.kind == Reply::Kind::change_header);
  CHECK(change.index == 2);
  CHECK(change.name == "Subject");
  CHECK(change.value == "[SPAM] hi");
  // An empty value deletes; index 0 means the first occurrence, as Sendmail has it.
  auto remove = parse_reply('m', be32(0) + "X-Spam\0\0"s);
  CHECK(remove.index == 1);
  CHECK(remove.value.empty());
}

TEST_CASE("envelope changes", "[milter]") {
  auto add = parse_reply('+', "<new@example.org>\0"s);
  CHECK(add.kind == Reply::Kind::add_rcpt);
  CHECK(add.address == "<new@example.org>");

  auto with_args = parse_reply('2', "<new@example.org>\0NOTIFY=NEVER\0"s);
  CHECK(with_args.kind == Reply::Kind::add_rcpt_with_args);
  CHECK(with_args.address == "<new@example.org>");
  CHECK(with_args.args == "NOTIFY=NEVER");
  CHECK(parse_reply('2', "<n@example.org>\0"s).args.empty());

  auto del = parse_reply('-', "<old@example.org>\0"s);
  CHECK(del.kind == Reply::Kind::delete_rcpt);
  CHECK(del.address == "<old@example.org>");

  // rspamd sends SMFIR_CHGFROM with the address only; libmilter adds the
  // arguments when smfi_chgfrom got some.
  auto from = parse_reply('e', "<bounce@example.org>\0"s);
  CHECK(from.kind == Reply::Kind::change_from);
  CHECK(from.address == "<bounce@example.org>");
  CHECK(from.args.empty());
  auto from_args = parse_reply('e', "<>\0SIZE=100 BODY=8BITMIME\0"s);
  CHECK(from_args.address == "<>");
  CHECK(from_args.args == "SIZE=100 BODY=8BITMIME");
}

TEST_CASE("body replacement and quarantine", "[milter]") {
  auto body = parse_reply('b', "new body\r\n\0with NUL\r\n"s);
  CHECK(body.kind == Reply::Kind::replace_body);
  CHECK(body.body == "new body\r\n\0with NUL\r\n"s);
  CHECK(parse_reply('b', "").body.empty());

  auto held = parse_reply('q', "virus found: Eicar-Test\0"s);
  CHECK(held.kind == Reply::Kind::quarantine);
  CHECK(held.reason == "virus found: Eicar-Test");
}

TEST_CASE("negotiation replies, with and without macro lists", "[milter]") {
  // rspamd's answer: the three numbers only.
  auto plain = parse_reply('O', be32(6) + be32(0x1ff) + be32(0x1c0000));
  CHECK(plain.kind == Reply::Kind::negotiate);
  CHECK(plain.negotiation.version == 6);
  CHECK(plain.negotiation.actions == action::all);
  CHECK(plain.negotiation.steps == 0x1c0000);
  for (const auto& list : plain.negotiation.macro_lists) CHECK_FALSE(list);

  // libmilter after smfi_setsymlist (milter_addsymlist): the stage index and
  // its names, in stage order, each list NUL-terminated.
  auto lists = parse_reply('O', be32(6) + be32(action::add_headers | action::set_macro_list) + be32(0) + be32(0) +
                                    "{client_addr} j\0"s + be32(2) + "{auth_type} {auth_authen}\0"s + be32(5) + "i\0"s +
                                    be32(6) + "\0"s);
  const auto& macros = lists.negotiation.macro_lists;
  CHECK(lists.negotiation.actions == 0x101);
  REQUIRE(macros[static_cast<int>(MacroStage::connect)]);
  CHECK(*macros[static_cast<int>(MacroStage::connect)] == "{client_addr} j");
  CHECK_FALSE(macros[static_cast<int>(MacroStage::helo)]);
  CHECK(*macros[static_cast<int>(MacroStage::mail)] == "{auth_type} {auth_authen}");
  CHECK_FALSE(macros[static_cast<int>(MacroStage::rcpt)]);
  CHECK_FALSE(macros[static_cast<int>(MacroStage::data)]);
  CHECK(*macros[static_cast<int>(MacroStage::end_of_message)] == "i");
  CHECK(*macros[static_cast<int>(MacroStage::end_of_headers)] == "");
}

TEST_CASE("malformed replies are refused with the reason", "[milter]") {
  struct Row {
    char command;
    std::string payload;
    const char* message;
  };
  auto row = GENERATE(values<Row>({
      {'x', "", "unknown reply command 0x78"},
      {'l', be32(0) + "j\0"s, "unknown reply command 0x6c"},
      {'\0', "", "unknown reply command 0x00"},
      {'O', be32(6) + be32(0), "protocol steps cut short (0 of 4 bytes)"},
      {'O', "", "version cut short"},
      {'O', be32(6) + be32(0) + be32(0) + "\0\0"s, "macro list stage cut short (2 of 4 bytes)"},
      {'O', be32(6) + be32(0) + be32(0) + be32(7) + "j\0"s, "macro list for unknown stage 7"},
      {'O', be32(6) + be32(0) + be32(0) + be32(0xffffffff) + "j\0"s, "macro list for unknown stage 4294967295"},
      {'O', be32(6) + be32(0) + be32(0) + be32(1) + "j"s, "macro list without its terminating NUL"},
      {'O', be32(6) + be32(0) + be32(0) + be32(1) + "j\0"s + be32(1) + "k\0"s, "two macro lists for stage 1"},
      {'y', "550 5.7.1 no NUL", "reply text without its terminating NUL"},
      {'y', "550 5.7.1 a\0b\0"s, "unexpected bytes after the last field"},
      {'y', "250 2.0.0 ok\0"s, "reply code 250 is not a 4xx or 5xx refusal"},
      {'y', "354 go on\0"s, "reply code 354"},
      {'y', "550 4.7.1 mixed\0"s, "enhanced status code of another class"},
      {'y', "450-4.7.1 a\r\n450 5.7.1 b\0"s, "enhanced status code of another class"},
      {'y', "550-5.7.1 a\r\n451 4.7.1 b\0"s, "not an SMTP reply"},
      {'y', "550 5.7.1 a\r\n550 5.7.1 b\0"s, "not an SMTP reply"},
      {'y', "550-5.7.1 a\r\n\0"s, "not an SMTP reply"},
      {'y', "550 5.7.1 a\rb\0"s, "CR not before LF"},
      {'y', "rejected\0"s, "not an SMTP reply"},
      {'y', "\0"s, "not an SMTP reply"},
      {'y', "", "reply text without its terminating NUL"},
      {'y', "600 bad\0"s, "not an SMTP reply"},
      {'h', "X-A\0v"s, "header value without its terminating NUL"},
      {'h', "X-A"s, "header name without its terminating NUL"},
      {'h', "X-A\0v\0extra"s, "unexpected bytes after the last field"},
      {'h', "\0v\0"s, "empty header name"},
      {'h', "X A\0v\0"s, "character not allowed in a field name"},
      {'h', "X:A\0v\0"s, "character not allowed in a field name"},
      {'h', "X-\x7f\0v\0"s, "character not allowed in a field name"},
      {'h', "X-\xc3\xa4\0v\0"s, "character not allowed in a field name"},
      {'h', "X-\tA\0v\0"s, "character not allowed in a field name"},
      {'h', "X-A\0v\nBcc: x@y\0"s, "line break not followed by white space"},
      {'h', "X-A\0v\r\nBcc: x@y\0"s, "line break not followed by white space"},
      {'h', "X-A\0v\n\0"s, "line break not followed by white space"},
      {'h', "X-A\0v\n\n x\0"s, "line break not followed by white space"},
      {'h', "X-A\0v\rBcc: x\0"s, "CR not before LF"},
      {'h', "X-A\0v\r\0"s, "CR not before LF"},
      {'i', "\0\0\0"s, "header index cut short (3 of 4 bytes)"},
      {'i', be32(0) + "X-A\0v\nx\0"s, "line break not followed by white space"},
      {'m', be32(1) + "\0\0"s, "empty header name"},
      {'m', be32(1) + "Subject\0"s, "header value without its terminating NUL"},
      {'m', be32(1) + "Sub ject\0x\0"s, "character not allowed"},
      {'+', "\0"s, "empty address"},
      {'+', "<a@b>"s, "address without its terminating NUL"},
      {'+', "<a@b>\0<c@d>\0"s, "unexpected bytes after the last field"},
      {'+', "<a@b>\r\nRCPT TO:<c@d>\0"s, "address with CR or LF"},
      {'-', "<a@b>\n\0"s, "address with CR or LF"},
      {'2', "<a@b>\0NOTIFY=NEVER"s, "ESMTP arguments without its terminating NUL"},
      {'2', "<a@b>\0X=1\nY\0"s, "ESMTP arguments with CR or LF"},
      {'2', "<a@b>\0X\0Y\0"s, "unexpected bytes after the last field"},
      {'e', "\0"s, "empty address"},
      {'e', "<a@b>\0X\0Y\0"s, "unexpected bytes after the last field"},
      {'e', "<a\r@b>\0"s, "address with CR or LF"},
      {'q', "\0"s, "empty quarantine reason"},
      {'q', "why"s, "reason without its terminating NUL"},
      {'q', "a\nb\0"s, "quarantine reason with CR or LF"},
      {'q', "a\0b\0"s, "unexpected bytes after the last field"},
  }));
  INFO("command " << row.command);
  CHECK_THROWS_AS(parse_reply(row.command, row.payload), ProtocolError);
  CHECK_THROWS_WITH(parse_reply(row.command, row.payload), Catch::Contains(row.message));
}

TEST_CASE("an error names the reply, never echoes its bytes", "[milter]") {
  CHECK_THROWS_WITH(parse_reply('h', "X\x1b[31mEVIL\0v\0"s),
                    "SMFIR_ADDHEADER: header name with a character not allowed in a field name");
  CHECK_THROWS_WITH(parse_reply('m', "\0\0"s), "SMFIR_CHGHEADER: header index cut short (2 of 4 bytes)");
  CHECK_THROWS_WITH(parse_reply('y', "250 ok\0"s), "SMFIR_REPLYCODE: reply code 250 is not a 4xx or 5xx refusal");
}

// ---- framing -----------------------------------------------------------------

namespace {

// A conversation's worth of replies, every kind, to cut anywhere.
std::string stream_of_replies() {
  return packet('O', be32(6) + be32(0x1ff) + be32(0) + be32(4) + "i\0"s) + packet('c', "") + packet('p', "") +
         packet('h', "X-Spam\0Yes\0"s) + packet('b', std::string(300, 'b') + "\0"s) + packet('m', be32(1) + "S\0\0"s) +
         packet('y', "550 5.7.1 no\0"s) + packet('a', "");
}

std::vector<Reply::Kind> kinds(PacketReader& reader) {
  std::vector<Reply::Kind> out;
  while (auto reply = reader.next()) out.push_back(reply->kind);
  return out;
}

const std::vector<Reply::Kind> kExpectedKinds{
    Reply::Kind::negotiate,    Reply::Kind::continue_,     Reply::Kind::progress,   Reply::Kind::add_header,
    Reply::Kind::replace_body, Reply::Kind::change_header, Reply::Kind::reply_code, Reply::Kind::accept};

}  // namespace

TEST_CASE("packets come out whole wherever the stream is cut", "[milter]") {
  auto stream = stream_of_replies();
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    INFO("cut at " << cut);
    PacketReader reader;
    reader.feed(std::string_view(stream).substr(0, cut));
    auto got = kinds(reader);
    reader.feed(std::string_view(stream).substr(cut));
    auto rest = kinds(reader);
    got.insert(got.end(), rest.begin(), rest.end());
    CHECK(got == kExpectedKinds);
    CHECK(reader.buffered() == 0);
  }
}

TEST_CASE("packets come out whole fed a byte at a time or in odd pieces", "[milter]") {
  auto stream = stream_of_replies();
  for (std::size_t piece : {1, 2, 3, 5, 7, 64, 4096}) {
    INFO("pieces of " << piece);
    PacketReader reader;
    std::vector<Reply::Kind> got;
    std::vector<Reply> replies;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      reader.feed(std::string_view(stream).substr(at, piece));
      while (auto reply = reader.next()) {
        got.push_back(reply->kind);
        replies.push_back(*reply);
      }
      CHECK(reader.buffered() <= piece + 400);
    }
    CHECK(got == kExpectedKinds);
    CHECK(reader.buffered() == 0);
    REQUIRE(replies.size() == kExpectedKinds.size());
    CHECK(*replies[0].negotiation.macro_lists[4] == "i");
    CHECK(replies[3].value == "Yes");
    CHECK(replies[4].body == std::string(300, 'b') + "\0"s);
    CHECK(replies[6].smtp.text == "no");
  }
}

TEST_CASE("a partial packet waits for the rest", "[milter]") {
  PacketReader reader;
  reader.feed("\x00\x00"s);
  CHECK_FALSE(reader.next());
  reader.feed("\x00\x05h"s);
  CHECK_FALSE(reader.next());
  CHECK(reader.buffered() == 5);
  reader.feed("X\0v\0"s);
  auto reply = reader.next();
  REQUIRE(reply);
  CHECK(reply->name == "X");
  CHECK_FALSE(reader.next());
  CHECK(reader.buffered() == 0);
}

TEST_CASE("a bad length is refused before its payload arrives", "[milter]") {
  PacketReader zero;
  zero.feed("\x00\x00\x00\x00"s);
  CHECK_THROWS_WITH(zero.next(), Catch::Contains("length 0"));

  PacketReader huge;
  huge.feed(be32(kMaxReplyPacket + 1));
  CHECK_THROWS_WITH(huge.next(), Catch::Contains("1048577 bytes"));

  PacketReader garbage;
  garbage.feed("HTTP/1.1 400 Bad Request\r\n");
  CHECK_THROWS_AS(garbage.next(), ProtocolError);

  // The largest allowed length is only waited on.
  PacketReader biggest;
  biggest.feed(be32(kMaxReplyPacket) + "b");
  CHECK_FALSE(biggest.next());
  biggest.feed(std::string(kMaxReplyPacket - 1, 'x'));
  auto reply = biggest.next();
  REQUIRE(reply);
  CHECK(reply->body.size() == kMaxReplyPacket - 1);
}

TEST_CASE("a malformed packet in the stream is an error, not skipped", "[milter]") {
  PacketReader reader;
  reader.feed(packet('c', "") + packet('h', "bad name\0v\0"s) + packet('c', ""));
  CHECK(reader.next()->kind == Reply::Kind::continue_);
  CHECK_THROWS_AS(reader.next(), ProtocolError);
}

TEST_CASE("what was read is dropped, so the buffer stays small", "[milter]") {
  PacketReader reader;
  auto one = packet('h', "X-A\0"s + std::string(1000, 'v') + "\0"s);
  for (int i = 0; i < 2000; ++i) {
    reader.feed(one.substr(0, 500));
    CHECK_FALSE(reader.next());
    reader.feed(one.substr(500));
    REQUIRE(reader.next());
    CHECK(reader.buffered() == 0);
  }
}

}  // namespace wsmtp::listener::milter
