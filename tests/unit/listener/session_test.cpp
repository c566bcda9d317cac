// Dialogue tests for the SMTP session: the Session is driven directly with the
// bytes a client would send, store ops are completed synchronously on a FakeStore,
// and the test checks the replies and what reached the store.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "dialogue.h"

namespace wsmtp::listener {
namespace {

using namespace test;

}  // namespace

TEST_CASE("greeting and EHLO advertise only what is implemented", "[session]") {
  Dialogue d;
  CHECK(d.send("") == "220 mx.example.org ESMTP WSMTP\r\n");
  CHECK(d.send("ehlo client.example.net\r\n") ==
        "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
        "250-SMTPUTF8\r\n250 CHUNKING\r\n");
  CHECK(codes(d.send("HELO client.example.net\r\n")) == std::vector<std::string>{"250"});
}

TEST_CASE("STARTTLS is offered when configured; AUTH only under TLS", "[session][tls]") {
  Dialogue d(tls_config());
  d.send("");
  auto ehlo = d.send("EHLO client.example.net\r\n");
  CHECK(ehlo.find("250-STARTTLS\r\n") != std::string::npos);
  CHECK(ehlo.find("AUTH") == std::string::npos);
  CHECK(codes(d.send("AUTH PLAIN " + base64(std::string("\0carol\0s3cret", 13)) + "\r\n")) ==
        std::vector<std::string>{"530 5.7.0"});
  CHECK(d.store.calls.empty());
  // Commands pipelined behind STARTTLS are not read by the session: the server
  // discards them before the handshake.
  CHECK(codes(d.send("STARTTLS\r\nMAIL FROM:<evil@example.net>\r\n")) == std::vector<std::string>{"220 2.0.0"});
  d.tls_handshake();
  CHECK(d.session().tls_active());
  // RFC 3207 §4.2: the session starts over.
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\n")) == std::vector<std::string>{"503 5.5.1"});
  ehlo = d.send("EHLO client.example.net\r\n");
  CHECK(ehlo.find("STARTTLS") == std::string::npos);
  CHECK(ehlo.find("250-AUTH PLAIN LOGIN\r\n") != std::string::npos);
  CHECK(codes(d.send("STARTTLS\r\n")) == std::vector<std::string>{"503 5.5.1"});
}

TEST_CASE("STARTTLS without a certificate is refused", "[session][tls]") {
  Dialogue d;
  d.hello();
  CHECK(codes(d.send("STARTTLS\r\n")) == std::vector<std::string>{"454 4.7.0"});
  CHECK(codes(d.send("AUTH PLAIN\r\n")) == std::vector<std::string>{"503 5.5.1"});
  CHECK_FALSE(d.session().wants_tls());
}

TEST_CASE("AUTH PLAIN and LOGIN under TLS; an authenticated user may relay", "[session][auth]") {
  auto how = GENERATE(as<std::string>{}, "plain-initial", "plain-challenge", "login", "login-initial");
  Dialogue d(tls_config());
  d.hello();
  d.send("STARTTLS\r\n");
  d.tls_handshake();
  d.send("EHLO client.example.net\r\n");
  auto plain = base64(std::string("\0carol\0s3cret", 13));
  std::string out;
  if (how == "plain-initial") out = d.send("AUTH PLAIN " + plain + "\r\n");
  // One send per step: each answer is read before the next line goes out.
  auto steps = [&](std::vector<std::string> lines) {
    for (const auto& line : lines) out += d.send(line + "\r\n");
  };
  if (how == "plain-challenge") steps({"AUTH PLAIN", plain});
  if (how == "login") steps({"AUTH LOGIN", base64("carol"), base64("s3cret")});
  if (how == "login-initial") steps({"AUTH LOGIN " + base64("carol"), base64("s3cret")});
  INFO(how << ": " << out);
  CHECK(codes(out).back() == "235 2.7.0");
  CHECK(d.session().authenticated());
  CHECK(codes(d.send("MAIL FROM:<carol@example.org>\r\nRCPT TO:<someone@remote.test>\r\nDATA\r\n")) ==
        std::vector<std::string>{"250 2.1.0", "250 2.1.5", "354"});
  CHECK(codes(d.send("Subject: x\r\n\r\nbody\r\n.\r\n")) == std::vector<std::string>{"250 2.0.0"});
  const auto& body = d.store.messages.at(42).body;
  CHECK(body.find("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)) with ESMTPSA id") !=
        std::string::npos);
  // Our own user's submission gets the Date: and Message-ID: it lacked.
  CHECK(body.find("\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n") != std::string::npos);
  CHECK(body.find("\r\nMessage-ID: <20231114221320.42.test-host.1@mx.example.org>\r\n\r\nbody") != std::string::npos);
  CHECK(codes(d.send("AUTH PLAIN " + plain + "\r\n")) == std::vector<std::string>{"503 5.5.1"});
}

TEST_CASE("AUTH failures are counted and end the session", "[session][auth]") {
  auto config = tls_config();
  config.max_errors = 100;
  Dialogue d(config);
  d.hello();
  d.send("STARTTLS\r\n");
  d.tls_handshake();
  d.send("EHLO client.example.net\r\n");
  CHECK(codes(d.send("AUTH PLAIN " + base64(std::string("\0carol\0wrong", 12)) + "\r\n")) ==
        std::vector<std::string>{"535 5.7.8"});
  CHECK(codes(d.send("AUTH LOGIN\r\n*\r\n")) == std::vector<std::string>{"334", "501 5.7.0"});
  CHECK(codes(d.send("AUTH PLAIN !!!notbase64\r\n")) == std::vector<std::string>{"501 5.5.2"});
  CHECK(codes(d.send("AUTH CRAM-MD5\r\n")) == std::vector<std::string>{"504 5.5.4"});
  d.store.fail_verify = true;
  CHECK(codes(d.send("AUTH PLAIN " + base64(std::string("\0carol\0s3cret", 13)) + "\r\n")) ==
        std::vector<std::string>{"454 4.7.0"});
  d.store.fail_verify = false;
  CHECK(codes(d.send("AUTH PLAIN " + base64(std::string("\0nobody\0s3cret", 14)) + "\r\n")) ==
        std::vector<std::string>{"535 5.7.8"});
  CHECK_FALSE(d.session().closing());
  CHECK(codes(d.send("AUTH PLAIN " + base64(std::string("\0carol\0nope", 11)) + "\r\n")) ==
        std::vector<std::string>{"535 5.7.8", "421 4.7.0"});
  CHECK(d.session().closing());
  CHECK_FALSE(d.session().authenticated());
}

TEST_CASE("a message is stored dot-unstuffed behind a Received header, in one transaction, before 250", "[session]") {
  Dialogue d;
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<sender@example.net> SIZE=100 BODY=8BITMIME\r\n")) ==
        std::vector<std::string>{"250 2.1.0"});
  CHECK(codes(d.send("RCPT TO:<Alice@Example.org>\r\n")) == std::vector<std::string>{"250 2.1.5"});
  CHECK(codes(d.send("DATA\r\n")) == std::vector<std::string>{"354"});
  CHECK(d.send("Subject: hi\r\n\r\n..leading dot\r\n.\r\n") == "250 2.0.0 Ok: queued as 42\r\n");

  const auto& m = d.store.messages.at(42);
  std::string header = kHeader;
  header.replace(header.find("alice"), 5, "Alice");
  header.replace(header.find("example.org>"), 11, "Example.org");
  // An untrusted client's message gets no Message-ID:/Date: from us.
  CHECK(m.body == header + "Subject: hi\r\n\r\n.leading dot\r\n");
  CHECK(m.committed);
  CHECK(m.size == static_cast<std::int64_t>(m.body.size()));
  CHECK(m.envelope.envelope_from == "sender@example.net");
  CHECK(m.envelope.recipients == std::vector<std::string>{"Alice@Example.org"});
  CHECK(m.envelope.client_addr == "192.0.2.10");
  CHECK(m.envelope.client_helo == "client.example.net");
  CHECK(m.envelope.received_by == "test-host:1");
  CHECK(d.store.calls == std::vector<std::string>{"check alice@example.org", "whole 42"});

  // The transaction is over: a new MAIL is needed.
  CHECK(codes(d.send("RCPT TO:<bob@example.org>\r\n")) == std::vector<std::string>{"503 5.5.1"});
  CHECK(codes(d.send("QUIT\r\n")) == std::vector<std::string>{"221 2.0.0"});
  CHECK(d.session().closing());
}

TEST_CASE("recipient verdicts, including the open-relay tricks", "[session][relay]") {
  struct Row {
    const char* client;
    std::vector<std::string> trusted;
    const char* rcpt;
    const char* expected;
  };
  auto row = GENERATE(values<Row>({
      {"192.0.2.10", {}, "<bob@example.org>", "250 2.1.5"},
      {"192.0.2.10", {}, "<nobody@example.org>", "550 5.1.1"},
      {"192.0.2.10", {}, "<someone@remote.test>", "554 5.7.1"},
      {"192.0.2.10", {"192.0.2.0/24"}, "<someone@remote.test>", "250 2.1.5"},
      {"2001:db8::5", {"2001:db8::/32"}, "<someone@remote.test>", "250 2.1.5"},
      {"198.51.100.1", {"192.0.2.0/24"}, "<someone@remote.test>", "554 5.7.1"},
      {"127.0.0.1", {}, "<someone@remote.test>", "554 5.7.1"},  // loopback is not trusted by default
      {"192.0.2.10", {}, "<Postmaster>", "250 2.1.5"},
      // RFC 5321 §4.5.1: postmaster in any local domain, without a mailbox.
      {"192.0.2.10", {}, "<postmaster@example.org>", "250 2.1.5"},
      {"192.0.2.10", {}, "<PostMaster@Example.ORG>", "250 2.1.5"},
      {"192.0.2.10", {}, "<postmaster+x@example.org>", "550 5.1.1"},
      {"192.0.2.10", {}, "<postmaster@remote.test>", "554 5.7.1"},
      {"192.0.2.10", {}, "bob@example.org", "501 5.1.3"},
      {"192.0.2.10", {}, "<bob@example.org> NOTIFY=NEVER", "555 5.5.4"},
      {"192.0.2.10", {}, "<user%remote.test@example.org>", "554 5.7.1"},
      {"192.0.2.10", {}, "<\"user@remote.test\"@example.org>", "554 5.7.1"},
      {"192.0.2.10", {}, "<remote.test!user@example.org>", "554 5.7.1"},
      {"192.0.2.10", {}, "<@example.org:user@remote.test>", "554 5.7.1"},
      {"192.0.2.10", {}, "<@example.org,@mx.example.org:bob@example.org>", "250 2.1.5"},
      {"192.0.2.10", {}, "<user@[127.0.0.1]>", "554 5.7.1"},
      {"192.0.2.10", {}, "<user@[IPv6:::1]>", "554 5.7.1"},
      {"192.0.2.10", {}, "<user@remote.test@example.org>", "501 5.1.3"},
      {"192.0.2.10", {}, "<bob@example.org.>", "501 5.1.3"},
      {"192.0.2.10", {}, "<jürgen@example.org>", "553 5.6.7"},
  }));
  auto config = test_config();
  for (const auto& t : row.trusted) config.trusted_networks.push_back(*Cidr::parse(t));
  Dialogue d(config, row.client);
  d.hello();
  d.send("MAIL FROM:<>\r\n");
  INFO(row.rcpt);
  CHECK(codes(d.send(std::string("RCPT TO:") + row.rcpt + "\r\n")) == std::vector<std::string>{row.expected});
}

// Issue 15 item 9: a mailbox the deliverer found full is refused at RCPT with a
// transient 452 4.2.2 (not queued to wait for days), and only that recipient:
// the others of the transaction are accepted and the message is stored for them.
TEST_CASE("a full mailbox gets 452 4.2.2 at RCPT; the others are accepted", "[session]") {
  Dialogue d;
  d.store.full_mailboxes.insert("alice@example.org");
  d.hello();
  d.send("MAIL FROM:<sender@remote.test>\r\n");
  CHECK(codes(d.send("RCPT TO:<alice@example.org>\r\n")) == std::vector<std::string>{"452 4.2.2"});
  CHECK(codes(d.send("RCPT TO:<bob@example.org>\r\n")) == std::vector<std::string>{"250 2.1.5"});
  CHECK(codes(d.send("DATA\r\n")) == std::vector<std::string>{"354"});
  CHECK(codes(d.send("Subject: x\r\n\r\nhi\r\n.\r\n")) == std::vector<std::string>{"250 2.0.0"});
  REQUIRE(d.store.messages.size() == 1);
  CHECK(d.store.messages.begin()->second.envelope.recipients == std::vector<std::string>{"bob@example.org"});
  // Only full recipients: DATA has nobody to deliver to.
  d.send("MAIL FROM:<sender@remote.test>\r\n");
  CHECK(codes(d.send("RCPT TO:<alice@example.org>\r\n")) == std::vector<std::string>{"452 4.2.2"});
  CHECK(codes(d.send("DATA\r\n")) == std::vector<std::string>{"554 5.5.1"});
}

// Issue 15 item 9: while the queue is full MAIL gets 452 4.3.1 and nothing is
// asked of the store; it is not counted as the client's error, and MAIL is
// accepted again as soon as the flag clears.
TEST_CASE("a full queue refuses MAIL with 452 4.3.1 until it is no longer full", "[session]") {
  auto config = test_config();
  config.max_errors = 2;
  Dialogue d(config);
  d.hello();
  d.queue_full = true;
  for (int i = 0; i < 4; ++i)
    CHECK(codes(d.send("MAIL FROM:<sender@remote.test>\r\n")) == std::vector<std::string>{"452 4.3.1"});
  CHECK_FALSE(d.session().closing());
  CHECK(d.store.calls.empty());
  d.queue_full = false;
  CHECK(codes(d.send("MAIL FROM:<sender@remote.test>\r\n")) == std::vector<std::string>{"250 2.1.0"});
  CHECK(codes(d.send("RCPT TO:<bob@example.org>\r\n")) == std::vector<std::string>{"250 2.1.5"});
}

// Issue 13: <Postmaster> got 554 5.7.1 when the listener's hostname was no
// local domain. It needs no lookup and is stored as the bare "postmaster".
TEST_CASE("<Postmaster> is accepted from anyone without a lookup", "[session][relay]") {
  auto config = test_config();
  config.hostname = "mx.not-local.test";
  Dialogue d(config, "198.51.100.7");
  d.hello();
  auto out = d.send(
      "MAIL FROM:<>\r\nRCPT TO:<POSTMASTER>\r\nRCPT TO:<postmaster@example.org>\r\n"
      "RCPT TO:<Postmaster@MX.Not-Local.test>\r\nDATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\n");
  CHECK(codes(out) == std::vector<std::string>{"250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0"});
  CHECK(d.store.calls.front() == "check postmaster@example.org");
  REQUIRE(d.store.messages.size() == 1);
  // postmaster@ our own name, no local domain here, is our postmaster: never relayed.
  CHECK(d.store.messages.begin()->second.envelope.recipients ==
        std::vector<std::string>{"postmaster", "postmaster@example.org", "postmaster"});
  CHECK(codes(d.send("MAIL FROM:<>\r\nRCPT TO:<Postmaster> FOO=1\r\n")) ==
        std::vector<std::string>{"250 2.1.0", "555 5.5.4"});
}

TEST_CASE("commands out of order, with bad syntax, or unknown", "[session]") {
  struct Row {
    std::vector<std::string> before;
    const char* command;
    const char* expected;
  };
  auto row = GENERATE(values<Row>({
      {{}, "MAIL FROM:<a@example.net>", "503 5.5.1"},
      {{"EHLO x"}, "RCPT TO:<bob@example.org>", "503 5.5.1"},
      {{"EHLO x"}, "DATA", "503 5.5.1"},
      {{"EHLO x", "MAIL FROM:<a@example.net>"}, "DATA", "503 5.5.1"},
      {{"EHLO x", "MAIL FROM:<a@example.net>"}, "MAIL FROM:<a@example.net>", "503 5.5.1"},
      {{"EHLO x", "MAIL FROM:<a@example.net>", "RCPT TO:<x@example.org>"}, "DATA", "554 5.5.1"},
      {{}, "EHLO", "501 5.5.4"},
      {{"EHLO x"}, "MAIL TO:<a@example.net>", "501 5.5.4"},
      {{"EHLO x"}, "MAIL FROM:<a@@example.net>", "501 5.1.7"},
      {{"EHLO x"}, "MAIL FROM:<a@example.net> SIZE=abc", "501 5.5.4"},
      {{"EHLO x"}, "MAIL FROM:<a@example.net> BODY=BINARYMIME", "501 5.5.4"},
      {{"EHLO x"}, "MAIL FROM:<a@example.net> SMTPUTF8", "250 2.1.0"},
      {{"EHLO x"}, "MAIL FROM:<a@example.net> SMTPUTF8=yes", "555 5.5.4"},
      {{"EHLO x"}, "MAIL FROM:<a@example.net> RET=FULL", "555 5.5.4"},
      {{"EHLO x"}, "MAIL FROM:<a@example.net> AUTH=<>", "250 2.1.0"},
      {{"EHLO x"}, "MAIL FROM:<jürgen@example.net>", "553 5.6.7"},
      {{"EHLO x"}, "MAIL FROM:<jürgen@example.net> SMTPUTF8", "250 2.1.0"},
      {{"EHLO x"}, "MAIL FROM:<a@example.net> SIZE=10001", "552 5.3.4"},
      {{"EHLO x", "MAIL FROM:<a@example.net>", "RCPT TO:<bob@example.org>"}, "DATA now", "501 5.5.4"},
      {{}, "RSET extra", "501 5.5.4"},
      {{}, "FOO bar", "500 5.5.1"},
      {{}, "VRFY bob", "252 2.0.0"},
      {{}, "EXPN staff", "502 5.5.1"},
      {{}, "HELP", "214 2.0.0"},
      {{}, "noop", "250 2.0.0"},
      {{"EHLO x"}, "mail from: <a@example.net>", "250 2.1.0"},
      {{"EHLO x"}, "BDAT 10", "503 5.5.1"},
  }));
  Dialogue d;
  d.send("");  // the greeting
  for (const auto& line : row.before) d.send(line + "\r\n");
  INFO(row.command);
  auto out = d.send(std::string(row.command) + "\r\n");
  if (std::string(row.command) == "BDAT 10") out += d.send("0123456789");  // the refused chunk is consumed
  CHECK(codes(out) == std::vector<std::string>{row.expected});
  CHECK_FALSE(d.session().closing());
}

TEST_CASE("SMTPUTF8 transactions take UTF-8 addresses and say so in Received:", "[session][utf8]") {
  Dialogue d;
  d.store.users.insert("jürgen@example.org");
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8\r\nRCPT TO:<jürgen@example.org>\r\nDATA\r\n")) ==
        std::vector<std::string>{"250 2.1.0", "250 2.1.5", "354"});
  CHECK(codes(d.send("Subject: Grüße\r\n\r\n8-bit body ü\r\n.\r\n")) == std::vector<std::string>{"250 2.0.0"});
  const auto& m = d.store.messages.at(42);
  CHECK(m.envelope.envelope_from == "δοκιμή@παράδειγμα.δοκιμή");
  CHECK(m.body.find("with UTF8SMTP id") != std::string::npos);
  CHECK(m.body.find("8-bit body ü\r\n") != std::string::npos);
}

TEST_CASE("an overlong command line gets 500 5.5.2 and the session continues", "[session]") {
  Dialogue d;
  d.hello();
  std::string just_fits = "NOOP " + std::string(Session::kMaxCommandLine - 7, 'x');
  CHECK(codes(d.send(just_fits + "\r\n")) == std::vector<std::string>{"250 2.0.0"});
  CHECK(codes(d.send(just_fits + "x\r\n")) == std::vector<std::string>{"500 5.5.2"});
  // Longer than the server passes at once: skipped up to the LF, answered once.
  CHECK(codes(d.send("NOOP " + std::string(5000, 'y') + "\r\nNOOP\r\n")) ==
        std::vector<std::string>{"500 5.5.2", "250 2.0.0"});
  CHECK_FALSE(d.session().closing());
}

TEST_CASE("only CRLF.CRLF ends DATA; bare LF and bare CR are stored as CRLF", "[session][smuggling]") {
  Dialogue d;
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\n");
  // ".\n" (bare LF), "\n.\r\n" (dot after a bare LF) and "\r.\r" are content, not the end.
  CHECK(d.send("one\r\n.\ntwo\n.\r\nthree\r.\rfour\r\nMAIL FROM:<x@y.z>\r\n") == "");
  CHECK(codes(d.send(".\r\n")) == std::vector<std::string>{"250 2.0.0"});
  CHECK(d.store.messages.at(42).body ==
        std::string(kHeader) + "one\r\n.\r\ntwo\r\n.\r\nthree\r\n.\r\nfour\r\nMAIL FROM:<x@y.z>\r\n");
  CHECK(d.store.calls.size() == 2);  // one message, not two
}

TEST_CASE("NUL and 8-bit bytes are content", "[session]") {
  Dialogue d;
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\n");
  std::string line("a\0b\xff\x80z", 6);
  CHECK(codes(d.send(line + "\r\n.\r\n")) == std::vector<std::string>{"250 2.0.0"});
  CHECK(d.store.messages.at(42).body == std::string(kHeader) + line + "\r\n");
}

TEST_CASE("text lines over max_line_length refuse the whole message", "[session]") {
  auto config = test_config();
  config.max_message_size = 1 << 20;
  Dialogue d(config);
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\n");
  std::string fits(998, 'a');
  CHECK(d.send(fits + "\r\n") == "");
  CHECK(codes(d.send(fits + "b\r\n.\r\n")) == std::vector<std::string>{"500 5.5.2"});
  CHECK(d.store.messages.empty());
  // The session goes on; a message of 998-octet lines is fine.
  d.send(std::string(kTransaction) + "DATA\r\n");
  CHECK(codes(d.send(fits + "\r\n" + fits + "\r\n.\r\n")) == std::vector<std::string>{"250 2.0.0"});
}

TEST_CASE("too many Received: headers is a mail loop: 554 5.4.6", "[session]") {
  auto config = test_config();
  config.max_received_headers = 10;
  Dialogue d(config);
  d.hello();
  std::string headers;
  for (int i = 0; i < 10; ++i) headers += "Received: from hop" + std::to_string(i) + "\r\n";
  d.send(std::string(kTransaction) + "DATA\r\n");
  CHECK(codes(d.send(headers + "\r\nbody\r\n.\r\n")) == std::vector<std::string>{"250 2.0.0"});
  d.send(std::string(kTransaction) + "DATA\r\n");
  CHECK(codes(d.send(headers + "received: from one-too-many\r\n\r\nbody\r\n.\r\n")) ==
        std::vector<std::string>{"554 5.4.6"});
  // "Received:" in the body is not a hop.
  d.send(std::string(kTransaction) + "DATA\r\n");
  CHECK(codes(d.send(headers + "\r\nReceived: quoted\r\n.\r\n")) == std::vector<std::string>{"250 2.0.0"});
}

TEST_CASE("BDAT chunks, pipelined, make one message", "[session][chunking]") {
  Dialogue d;
  d.hello();
  std::string part1 = "Subject: chunked\r\n\r\nfirst\r";  // CRLF split across chunks
  std::string part2 = "\n.\r\nsecond with bare\nLF";      // no dot-stuffing, no final CRLF
  auto out = d.send(std::string(kTransaction) + "BDAT " + std::to_string(part1.size()) + "\r\n" + part1 + "BDAT " +
                    std::to_string(part2.size()) + " LAST\r\n" + part2 + "NOOP\r\n");
  CHECK(codes(out) == std::vector<std::string>{"250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0", "250 2.0.0"});
  CHECK(out.find("250 2.0.0 " + std::to_string(part1.size()) + " octets received") != std::string::npos);
  CHECK(out.find("queued as 42") != std::string::npos);
  CHECK(d.store.messages.at(42).body ==
        std::string(kHeader) + "Subject: chunked\r\n\r\nfirst\r\n.\r\nsecond with bare\r\nLF\r\n");
  // DATA after BDAT, and BDAT without a transaction.
  d.send(std::string(kTransaction) + "BDAT 3\r\nabc");
  CHECK(codes(d.send("DATA\r\n")) == std::vector<std::string>{"503 5.5.1"});
  CHECK(codes(d.send("RSET\r\nBDAT 0 LAST\r\n")) == std::vector<std::string>{"250 2.0.0", "503 5.5.1"});
  CHECK(codes(d.send("BDAT x\r\n")) == std::vector<std::string>{"501 5.5.4", "421 4.7.0"});
  CHECK(d.session().closing());
}

TEST_CASE("BDAT over the size limit is refused after the chunk, nothing stored", "[session][chunking]") {
  Dialogue d;
  d.hello();
  std::string big(12000, 'x');
  auto out = d.send(std::string(kTransaction) + "BDAT 12000 LAST\r\n" + big);
  CHECK(codes(out) == std::vector<std::string>{"250 2.1.0", "250 2.1.5", "552 5.3.4"});
  CHECK(d.store.messages.empty());
  CHECK(codes(d.send("NOOP\r\n")) == std::vector<std::string>{"250 2.0.0"});
}

TEST_CASE("lines longer than a piece are passed through as data, stuffing and CRLF intact", "[session]") {
  auto config = test_config();
  config.max_message_size = 1 << 20;
  config.max_line_length = 1 << 20;
  Dialogue d(config);
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\n");
  // The first piece ends with the CR of the CRLF, and its line starts with a stuffed dot.
  std::string long_line = "." + std::string(Session::kDataPiece - 2, 'z');
  CHECK(codes(d.send(long_line + "\r\n.\r\n")) == std::vector<std::string>{"250 2.0.0"});
  CHECK(d.store.messages.at(42).body == std::string(kHeader) + long_line.substr(1) + "\r\n");
}

TEST_CASE("large messages go to the store in bounded chunks", "[session]") {
  auto config = test_config();
  config.max_message_size = 1 << 20;
  Dialogue d(config);
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\n");
  std::string line(998, 'b');
  std::string expected = kHeader;
  for (std::size_t i = 0; i < 4 * Session::kBodyChunkSize / 1000; ++i) {
    d.send(line + "\r\n");
    expected += line + "\r\n";
  }
  CHECK(codes(d.send(".\r\n")) == std::vector<std::string>{"250 2.0.0"});
  CHECK(d.store.messages.at(42).body == expected);
  CHECK(d.store.messages.at(42).next_seq >= 4);
  CHECK(d.store.calls[1] == "begin 42");
  CHECK(d.store.calls.back() == "commit 42");
  CHECK(d.store.max_chunk <= Session::kBodyChunkSize + Session::kDataPiece + 2);
}

TEST_CASE("size limits: SIZE= at MAIL and the real size during DATA", "[session]") {
  Dialogue d;
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<a@example.net> SIZE=20000\r\n")) == std::vector<std::string>{"552 5.3.4"});
  d.send(std::string(kTransaction) + "DATA\r\n");
  std::string line(500, 'x');
  std::string out;
  for (int i = 0; i < 40; ++i) out += d.send(line + "\r\n");
  CHECK(out.empty());  // nothing is said until the end of the data
  CHECK(codes(d.send(".\r\n")) == std::vector<std::string>{"552 5.3.4"});
  CHECK(d.store.messages.empty());
  // The session goes on with a new transaction.
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\n")) == std::vector<std::string>{"250 2.1.0"});
}

TEST_CASE("store failures answer 451 and never commit", "[session]") {
  auto which = GENERATE(as<std::string>{}, "check", "begin", "append", "commit");
  auto config = test_config();
  config.max_message_size = 1 << 20;
  config.max_errors = 1000;  // the refused DATA's lines come back as unknown commands
  Dialogue d(config);
  d.store.fail_check = which == "check";
  d.store.fail_begin = which == "begin";
  d.store.fail_append = which == "append";
  d.store.fail_commit = which == "commit";
  d.hello();
  d.send("MAIL FROM:<a@example.net>\r\n");
  // Big enough to be streamed (begin, append, commit), so every op is exercised.
  std::string body;
  for (std::size_t i = 0; i < Session::kBodyChunkSize / 900; ++i) body += std::string(990, 'q') + "\r\n";
  auto out = d.send("RCPT TO:<alice@example.org>\r\nDATA\r\n" + body + ".\r\n");
  INFO(which << ": " << out);
  if (which == "check") {
    CHECK(codes(out).at(0) == "451 4.3.0");
  } else {
    CHECK(codes(out) == std::vector<std::string>{"250 2.1.5", "354", "451 4.3.0"});
    for (const auto& [id, m] : d.store.messages) CHECK_FALSE(m.committed);
  }
  CHECK_FALSE(d.session().closing());
  CHECK(codes(d.send("RSET\r\n")) == std::vector<std::string>{"250 2.0.0"});
}

TEST_CASE("a failed small-message store answers 451", "[session]") {
  Dialogue d;
  d.store.fail_commit = true;
  d.hello();
  CHECK(codes(d.send(std::string(kTransaction) + "DATA\r\nhello\r\n.\r\n")) ==
        std::vector<std::string>{"250 2.1.0", "250 2.1.5", "354", "451 4.3.0"});
  CHECK(d.store.messages.empty());
}

TEST_CASE("RSET clears the transaction", "[session]") {
  Dialogue d;
  d.hello();
  d.send(kTransaction);
  CHECK(codes(d.send("RSET\r\nDATA\r\n")) == std::vector<std::string>{"250 2.0.0", "503 5.5.1"});
}

TEST_CASE("more than max_recipients gets 452 4.5.3", "[session]") {
  Dialogue d;
  d.hello();
  d.send("MAIL FROM:<a@example.net>\r\n");
  auto out = d.send(
      "RCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<alice@example.org>\r\n"
      "RCPT TO:<bob@example.org>\r\n");
  CHECK(codes(out) == std::vector<std::string>{"250 2.1.5", "250 2.1.5", "250 2.1.5", "452 4.5.3"});
  CHECK(codes(d.send("DATA\r\n")) == std::vector<std::string>{"354"});
}

TEST_CASE("a pipelined transaction is answered in order", "[session]") {
  Dialogue d;
  d.send("");
  auto out = d.send(
      "EHLO client.example.net\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
      "RCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nbody\r\n.\r\nQUIT\r\n");
  CHECK(codes(out) == std::vector<std::string>{"250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354",
                                               "250 2.0.0", "221 2.0.0"});
  // Two recipients: the Received header names none of them.
  CHECK(d.store.messages.at(42).body.find("\tfor <") == std::string::npos);
  CHECK(d.store.messages.at(42).committed);
}

TEST_CASE("errors past tarpit_after_errors ask for a delay; too many end the session", "[session]") {
  Dialogue d;
  d.hello();
  CHECK(d.session().take_tarpit().count() == 0);
  auto out = d.send("A\r\nB\r\n");
  CHECK(d.session().take_tarpit().count() == 0);
  out += d.send("C\r\n");
  CHECK(d.session().take_tarpit() == std::chrono::seconds(1));
  out += d.send("D\r\nE\r\nNOOP\r\n");
  CHECK(codes(out) ==
        std::vector<std::string>{"500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1", "421 4.7.0"});
  CHECK(d.session().closing());
}

TEST_CASE("a client in limit_exceptions is neither tarpitted nor cut off for errors", "[session]") {
  auto config = test_config();
  config.limit_exceptions.push_back(*Cidr::parse("192.0.2.0/24"));
  Dialogue d(config);
  d.hello();
  std::string out;
  for (int i = 0; i < 20; ++i) {
    out += d.send("A\r\n");
    CHECK(d.session().take_tarpit().count() == 0);
  }
  CHECK_FALSE(d.session().closing());
  CHECK(codes(d.send("NOOP\r\n")) == std::vector<std::string>{"250 2.0.0"});
}

TEST_CASE("a browser's request is not SMTP", "[session]") {
  Dialogue d;
  d.send("");
  CHECK(codes(d.send("GET / HTTP/1.1\r\nHost: x\r\n")) == std::vector<std::string>{"221 2.7.0"});
  CHECK(d.session().closing());
}

TEST_CASE("disconnect, timeout and shutdown during DATA never commit", "[session]") {
  auto how = GENERATE(as<std::string>{}, "disconnect", "timeout", "shutdown");
  auto big = GENERATE(false, true);
  auto config = test_config();
  config.max_message_size = 1 << 20;
  Dialogue d(config);
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\npartial\r\n");
  if (big)
    for (std::size_t i = 0; i < Session::kBodyChunkSize / 900; ++i) d.send(std::string(990, 'p') + "\r\n");
  std::string out = how == "disconnect" ? d.disconnect() : how == "timeout" ? d.timeout() : d.shutdown();
  if (how == "timeout") CHECK(codes(out) == std::vector<std::string>{"421 4.4.2"});
  if (how == "shutdown") CHECK(codes(out) == std::vector<std::string>{"421 4.3.2"});
  if (how == "disconnect") CHECK(out.empty());
  CHECK(d.session().closing());
  CHECK(d.store.messages.size() == (big ? 1u : 0u));
  for (const auto& [id, m] : d.store.messages) {
    CHECK(m.aborted);
    CHECK_FALSE(m.committed);
  }
}

TEST_CASE("a passed deadline ends the session with 421 4.4.2 and never commits", "[session]") {
  auto kind = GENERATE(Deadlines::Kind::command, Deadlines::Kind::data, Deadlines::Kind::session);
  auto config = test_config();
  config.max_message_size = 1 << 20;
  Dialogue d(config);
  d.hello();
  if (kind == Deadlines::Kind::data) {
    d.send(std::string(kTransaction) + "DATA\r\n");
    for (std::size_t i = 0; i < Session::kBodyChunkSize / 900; ++i) d.send(std::string(990, 'p') + "\r\n");
    CHECK(d.session().message_in_progress());
  } else {
    d.send("MAIL FROM:<a@example.net>\r\nRC");
    CHECK_FALSE(d.session().message_in_progress());
  }
  auto out = d.deadline(kind);
  REQUIRE(codes(out) == std::vector<std::string>{"421 4.4.2"});
  const char* text = kind == Deadlines::Kind::command ? "command line not received in time"
                     : kind == Deadlines::Kind::data  ? "message data arriving too slowly"
                                                      : "session time limit exceeded";
  CHECK(out.find(text) != std::string::npos);
  CHECK(d.session().closing());
  CHECK_FALSE(d.session().message_in_progress());
  for (const auto& [id, m] : d.store.messages) {
    CHECK(m.aborted);
    CHECK_FALSE(m.committed);
  }
  CHECK(d.deadline(kind).empty());  // once only
}

TEST_CASE("a disconnect while the last chunk is being written never commits", "[session]") {
  auto config = test_config();
  config.max_message_size = 1 << 20;
  Dialogue d(config);
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\n");
  for (std::size_t i = 0; i < Session::kBodyChunkSize * 11 / 10 / 992; ++i) d.send(std::string(990, 'p') + "\r\n");
  d.session().on_line(".\r", true);
  REQUIRE(d.session().waiting());
  auto op = d.session().take_store_op();
  REQUIRE(std::holds_alternative<AppendBody>(*op));
  d.session().on_disconnect();  // the client is gone while the append runs
  d.session().on_store_result(run_store_op(d.store, *op));
  auto abort = d.session().take_store_op();
  REQUIRE(abort);
  CHECK(std::holds_alternative<AbortMessage>(*abort));
  CHECK(d.session().take_output().empty());
}

TEST_CASE("shutdown while idle says 421 at once", "[session]") {
  Dialogue d;
  d.hello();
  CHECK(codes(d.shutdown()) == std::vector<std::string>{"421 4.3.2"});
  CHECK(d.session().closing());
  CHECK_FALSE(d.session().waiting());
}

// The queue id (issue 13): the id the message is stored under is the one in
// Received:, the Message-ID we add and the 250, taken at the start of the body.
std::string received_id(const std::string& body) {
  auto at = body.find(" with ESMTP id ");
  auto end = body.find_first_of("\r;", at + 15);
  return at == std::string::npos ? std::string() : body.substr(at + 15, end - at - 15);
}

TEST_CASE("the queue id is the stored id: in Received:, the 250 and each message anew", "[session][queue_id]") {
  Dialogue d;
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\n");
  CHECK(d.send("Subject: one\r\n\r\nx\r\n.\r\n") == "250 2.0.0 Ok: queued as 42\r\n");
  CHECK(received_id(d.store.messages.at(42).body) == "42");
  // The next message in the session takes the next id from the reserve: no
  // store call for it, and never the previous message's id.
  d.send(std::string(kTransaction) + "DATA\r\n");
  CHECK(d.send("Subject: two\r\n\r\ny\r\n.\r\n") == "250 2.0.0 Ok: queued as 43\r\n");
  CHECK(received_id(d.store.messages.at(43).body) == "43");
  CHECK(d.store.calls ==
        std::vector<std::string>{"check alice@example.org", "whole 42", "check alice@example.org", "whole 43"});
  CHECK(d.store.reserved == std::vector<int>{4});
}

TEST_CASE("a refused message's queue id is not used again", "[session][queue_id]") {
  Dialogue d;
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\n");
  CHECK(codes(d.send(std::string(20000, 'x') + "\r\n.\r\n")) == std::vector<std::string>{"552 5.3.4"});
  d.send("RSET\r\n" + std::string(kTransaction) + "DATA\r\n");
  CHECK(d.send("\r\nbody\r\n.\r\n") == "250 2.0.0 Ok: queued as 43\r\n");
  CHECK_FALSE(d.store.messages.count(42));
}

TEST_CASE("the reserve is refilled before it runs dry", "[session][queue_id]") {
  Dialogue d;
  d.hello();
  for (int i = 0; i < 6; ++i) {
    d.send(std::string(kTransaction) + "DATA\r\n");
    CHECK(codes(d.send("\r\nbody\r\n.\r\n")) == std::vector<std::string>{"250 2.0.0"});
  }
  // Block of 4: 42-45 were reserved when the session started; once fewer than
  // half were left 46-49 were reserved, without a session waiting for them.
  CHECK(d.store.reserved == std::vector<int>{4, 4});
  for (std::int64_t id = 42; id < 48; ++id) CHECK(received_id(d.store.messages.at(id).body) == std::to_string(id));
  CHECK(d.ids.size() == 2);
}

TEST_CASE("an empty reserve parks DATA until ids are reserved; without one, 451", "[session][queue_id]") {
  Dialogue d;
  d.refill = false;
  d.hello();
  d.store.fail_reserve = true;
  CHECK(codes(d.send(std::string(kTransaction) + "DATA\r\n")) ==
        std::vector<std::string>{"250 2.1.0", "250 2.1.5", "451 4.3.0"});
  d.store.fail_reserve = false;
  CHECK(codes(d.send("DATA\r\n")) == std::vector<std::string>{"354"});
  CHECK(d.send("\r\nbody\r\n.\r\n") == "250 2.0.0 Ok: queued as 42\r\n");
  // The parked session's block was kept for the next messages.
  CHECK(d.store.reserved == std::vector<int>{4, 4});
  CHECK(d.ids.size() == 3);
}

TEST_CASE("with no queue shard to take mail, DATA and BDAT get 451 4.3.0 saying so", "[session][queue_id]") {
  Dialogue d;
  d.refill = false;
  d.hello();
  d.no_shard = true;
  auto out = d.send(std::string(kTransaction) + "DATA\r\n");
  CHECK(codes(out) == std::vector<std::string>{"250 2.1.0", "250 2.1.5", "451 4.3.0"});
  CHECK_THAT(out, Catch::Contains("no queue database is available"));
  out = d.send("BDAT 4 LAST\r\nabcd");
  CHECK(codes(out) == std::vector<std::string>{"451 4.3.0"});
  CHECK_THAT(out, Catch::Contains("no queue database is available"));
  // A shard back: the same transaction goes on.
  d.no_shard = false;
  CHECK(codes(d.send("DATA\r\n")) == std::vector<std::string>{"354"});
  CHECK(d.send("\r\nbody\r\n.\r\n") == "250 2.0.0 Ok: queued as 42\r\n");
}

TEST_CASE("a first BDAT waits for its queue id before its chunk is read", "[session][queue_id][chunking]") {
  Dialogue d;
  d.refill = false;
  d.hello();
  std::string chunk = "Subject: c\r\n\r\nchunked\r\n";
  d.send(std::string(kTransaction));
  d.session().on_line("BDAT " + std::to_string(chunk.size()) + " LAST\r", true);
  REQUIRE(d.session().waiting());
  CHECK(d.session().raw_remaining() == 0);  // the server reads nothing while parked
  auto op = d.session().take_store_op();
  REQUIRE(std::holds_alternative<TakeQueueId>(*op));
  d.session().on_store_result(run_store_op(d.store, *op, &d.ids));
  CHECK(d.session().raw_remaining() == chunk.size());
  CHECK(d.send(chunk) == "250 2.0.0 Ok: queued as 42\r\n");
  CHECK(received_id(d.store.messages.at(42).body) == "42");

  // Refused for want of an id: the chunk is still read, then 451.
  d.store.fail_reserve = true;
  while (d.ids.take()) {
  }
  auto out = d.send(std::string(kTransaction) + "BDAT 4 LAST\r\nabcd");
  CHECK(codes(out) == std::vector<std::string>{"250 2.1.0", "250 2.1.5", "451 4.3.0"});
  CHECK_FALSE(d.session().in_data());
}

TEST_CASE("a streamed message is created under the queue id its Received: names", "[session][queue_id]") {
  auto config = test_config();
  config.max_message_size = 1 << 20;
  Dialogue d(config);
  d.hello();
  d.send(std::string(kTransaction) + "DATA\r\n");
  for (std::size_t i = 0; i < 2 * Session::kBodyChunkSize / 1000; ++i) d.send(std::string(998, 's') + "\r\n");
  CHECK(d.send(".\r\n") == "250 2.0.0 Ok: queued as 42\r\n");
  CHECK(received_id(d.store.messages.at(42).body) == "42");
  CHECK(std::find(d.store.calls.begin(), d.store.calls.end(), "begin 42") != d.store.calls.end());
  CHECK(d.store.messages.at(42).committed);
}

}  // namespace wsmtp::listener
