// Dialogue tests for the SMTP session: the Session is driven directly with the
// bytes a client would send, store ops are completed synchronously on a FakeStore,
// and the test checks the replies and what reached the store.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "fake_store.h"
#include "session.h"
#include "store_op.h"

namespace wsmtp::listener {
namespace {

using test::FakeStore;

ListenerConfig test_config() {
  ListenerConfig c;
  c.hostname = "mx.example.org";
  c.max_message_size = 10000;
  c.max_recipients = 3;
  c.max_errors = 5;
  return c;
}

// What server.cpp does, minus the sockets: split input at LF (pieces of at most
// max_piece() bytes), never feed a parked session, and run its store ops.
class Dialogue {
 public:
  explicit Dialogue(ListenerConfig config = test_config(), const char* client = "192.0.2.10")
      : config_(std::move(config)) {
    SessionContext context{*IpAddress::parse(client), "test-host:1",
                           [] { return std::chrono::system_clock::from_time_t(1700000000); }};
    session_ = std::make_unique<Session>(config_, std::move(context));
  }

  // Sends bytes and returns every reply produced meanwhile.
  std::string send(std::string_view bytes) {
    input_.append(bytes);
    for (;;) {
      run_ops();
      if (session_->closing()) break;
      auto limit = session_->max_piece();
      auto lf = input_.find('\n');
      if (lf != std::string::npos && lf < limit) {
        session_->on_line(std::string_view(input_).substr(0, lf), true);
        input_.erase(0, lf + 1);
      } else if (input_.size() >= limit) {
        session_->on_line(std::string_view(input_).substr(0, limit), false);
        input_.erase(0, limit);
      } else {
        break;
      }
    }
    return take();
  }

  // The server's part when the client goes away or times out.
  std::string disconnect() {
    session_->on_disconnect();
    run_ops();
    return take();
  }
  std::string timeout() {
    session_->on_timeout();
    run_ops();
    return take();
  }
  std::string shutdown() {
    session_->on_shutdown();
    run_ops();
    return take();
  }

  // Greeting and EHLO, replies discarded.
  void hello() {
    take();
    send("EHLO client.example.net\r\n");
  }

  FakeStore store;
  Session& session() { return *session_; }

 private:
  void run_ops() {
    while (session_->waiting()) {
      auto op = session_->take_store_op();
      REQUIRE(op);
      session_->on_store_result(run_store_op(store, *op));
    }
  }
  std::string take() {
    auto out = session_->take_output();
    transcript_ += out;
    return out;
  }

  ListenerConfig config_;
  std::unique_ptr<Session> session_;
  std::string input_;
  std::string transcript_;
};

// "250 2.1.0 Sender ok\r\n354 ...\r\n" -> {"250 2.1.0", "354"}: code and enhanced
// code of each final reply line.
std::vector<std::string> codes(const std::string& output) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < output.size()) {
    auto end = output.find("\r\n", pos);
    auto line = output.substr(pos, end - pos);
    pos = end + 2;
    if (line.size() > 3 && line[3] == '-') continue;
    auto second = line.find(' ', 4);
    bool enhanced = line.size() > 4 && line[5] == '.';
    out.push_back(enhanced ? line.substr(0, second) : line.substr(0, 3));
  }
  return out;
}

const char* kHeader =
    "Received: from client.example.net ([192.0.2.10])\r\n"
    "\tby mx.example.org with ESMTP id 42\r\n"
    "\tfor <alice@example.org>; Tue, 14 Nov 2023 22:13:20 +0000\r\n";

}  // namespace

TEST_CASE("greeting and EHLO advertise only what is implemented", "[session]") {
  Dialogue d;
  CHECK(d.send("") == "220 mx.example.org ESMTP WSMTP\r\n");
  CHECK(d.send("ehlo client.example.net\r\n") ==
        "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
  CHECK(codes(d.send("HELO client.example.net\r\n")) == std::vector<std::string>{"250"});
}

TEST_CASE("a message is stored dot-unstuffed behind a Received header and committed before 250", "[session]") {
  Dialogue d;
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<sender@example.net> SIZE=100 BODY=8BITMIME\r\n")) ==
        std::vector<std::string>{"250 2.1.0"});
  CHECK(codes(d.send("RCPT TO:<Alice@Example.org>\r\n")) == std::vector<std::string>{"250 2.1.5"});
  CHECK(codes(d.send("DATA\r\n")) == std::vector<std::string>{"354"});
  CHECK(d.store.messages.at(42).envelope.recipients == std::vector<std::string>{"Alice@Example.org"});
  CHECK(d.send("Subject: hi\r\n\r\n..leading dot\r\n.\r\n") == "250 2.0.0 Ok: queued as 42\r\n");

  const auto& m = d.store.messages.at(42);
  std::string header = kHeader;
  header.replace(header.find("alice"), 5, "Alice");
  header.replace(header.find("example.org>"), 11, "Example.org");
  CHECK(m.body == header + "Subject: hi\r\n\r\n.leading dot\r\n");
  CHECK(m.committed);
  CHECK(m.size == static_cast<std::int64_t>(m.body.size()));
  CHECK(m.envelope.envelope_from == "sender@example.net");
  CHECK(m.envelope.client_addr == "192.0.2.10");
  CHECK(m.envelope.client_helo == "client.example.net");
  CHECK(m.envelope.received_by == "test-host:1");
  CHECK(d.store.calls == std::vector<std::string>{"check alice@example.org", "begin", "append 42 0", "commit 42"});

  // The transaction is over: a new MAIL is needed.
  CHECK(codes(d.send("RCPT TO:<bob@example.org>\r\n")) == std::vector<std::string>{"503 5.5.1"});
  CHECK(codes(d.send("QUIT\r\n")) == std::vector<std::string>{"221 2.0.0"});
  CHECK(d.session().closing());
}

TEST_CASE("recipient verdicts", "[session]") {
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
      {"192.0.2.10", {}, "<Postmaster>", "250 2.1.5"},
      {"192.0.2.10", {}, "bob@example.org", "501 5.1.3"},
      {"192.0.2.10", {}, "<bob@example.org> NOTIFY=NEVER", "555 5.5.4"},
  }));
  auto config = test_config();
  for (const auto& t : row.trusted) config.trusted_networks.push_back(*Cidr::parse(t));
  Dialogue d(config, row.client);
  d.hello();
  d.send("MAIL FROM:<>\r\n");
  INFO(row.rcpt);
  CHECK(codes(d.send(std::string("RCPT TO:") + row.rcpt + "\r\n")) == std::vector<std::string>{row.expected});
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
      {{"EHLO x"}, "MAIL FROM:<a@example.net> SMTPUTF8", "555 5.5.4"},
      {{"EHLO x"}, "MAIL FROM:<a@example.net> SIZE=10001", "552 5.3.4"},
      {{"EHLO x", "MAIL FROM:<a@example.net>", "RCPT TO:<bob@example.org>"}, "DATA now", "501 5.5.4"},
      {{}, "RSET extra", "501 5.5.4"},
      {{}, "FOO bar", "500 5.5.1"},
      {{}, "VRFY bob", "252 2.0.0"},
      {{}, "EXPN staff", "502 5.5.1"},
      {{}, "HELP", "214 2.0.0"},
      {{}, "noop", "250 2.0.0"},
      {{"EHLO x"}, "mail from: <a@example.net>", "250 2.1.0"},
  }));
  Dialogue d;
  d.send("");  // the greeting
  for (const auto& line : row.before) d.send(line + "\r\n");
  INFO(row.command);
  CHECK(codes(d.send(std::string(row.command) + "\r\n")) == std::vector<std::string>{row.expected});
  CHECK_FALSE(d.session().closing());
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

TEST_CASE("only CRLF.CRLF ends DATA; bare LFs become CRLF", "[session]") {
  Dialogue d;
  d.hello();
  d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n");
  // ".\n" (bare LF) and "\n.\r\n" (dot after a bare LF) are content, not the end.
  CHECK(d.send("one\r\n.\ntwo\n.\r\nthree\r\n") == "");
  CHECK(codes(d.send(".\r\n")) == std::vector<std::string>{"250 2.0.0"});
  CHECK(d.store.messages.at(42).body == std::string(kHeader) + "one\r\n.\r\ntwo\r\n.\r\nthree\r\n");
}

TEST_CASE("lines longer than a piece are passed through as data, stuffing and CRLF intact", "[session]") {
  auto config = test_config();
  config.max_message_size = 1 << 20;
  Dialogue d(config);
  d.hello();
  d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n");
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
  d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n");
  std::string line(998, 'b');
  std::string expected = kHeader;
  for (int i = 0; i < 300; ++i) {
    d.send(line + "\r\n");
    expected += line + "\r\n";
  }
  CHECK(codes(d.send(".\r\n")) == std::vector<std::string>{"250 2.0.0"});
  CHECK(d.store.messages.at(42).body == expected);
  CHECK(d.store.messages.at(42).next_seq >= 4);
  CHECK(d.store.max_chunk <= Session::kBodyChunkSize + Session::kDataPiece + 2);
}

TEST_CASE("size limits: SIZE= at MAIL and the real size during DATA", "[session]") {
  Dialogue d;
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<a@example.net> SIZE=20000\r\n")) == std::vector<std::string>{"552 5.3.4"});
  d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n");
  std::string line(500, 'x');
  std::string out;
  for (int i = 0; i < 40; ++i) out += d.send(line + "\r\n");
  CHECK(out.empty());  // nothing is said until the end of the data
  CHECK(codes(d.send(".\r\n")) == std::vector<std::string>{"552 5.3.4"});
  CHECK(d.store.messages.at(42).aborted);
  CHECK_FALSE(d.store.messages.at(42).committed);
  CHECK(std::count(d.store.calls.begin(), d.store.calls.end(), "commit 42") == 0);
  // The session goes on with a new transaction.
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\n")) == std::vector<std::string>{"250 2.1.0"});
}

TEST_CASE("store failures answer 451 and never commit", "[session]") {
  auto which = GENERATE(as<std::string>{}, "check", "begin", "append", "commit");
  Dialogue d;
  d.store.fail_check = which == "check";
  d.store.fail_begin = which == "begin";
  d.store.fail_append = which == "append";
  d.store.fail_commit = which == "commit";
  d.hello();
  d.send("MAIL FROM:<a@example.net>\r\n");
  auto out = d.send("RCPT TO:<alice@example.org>\r\nDATA\r\nhello\r\n.\r\n");
  INFO(which << ": " << out);
  if (which == "check") {
    CHECK(codes(out) == std::vector<std::string>{"451 4.3.0", "503 5.5.1", "500 5.5.1", "500 5.5.1"});
  } else if (which == "begin") {
    CHECK(codes(out) == std::vector<std::string>{"250 2.1.5", "451 4.3.0", "500 5.5.1", "500 5.5.1"});
  } else {
    CHECK(codes(out) == std::vector<std::string>{"250 2.1.5", "354", "451 4.3.0"});
    CHECK(d.store.messages.at(42).aborted);
    CHECK_FALSE(d.store.messages.at(42).committed);
  }
  CHECK_FALSE(d.session().closing());
  CHECK(codes(d.send("RSET\r\n")) == std::vector<std::string>{"250 2.0.0"});
}

TEST_CASE("RSET clears the transaction", "[session]") {
  Dialogue d;
  d.hello();
  d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\n");
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
  CHECK(codes(out) ==
        std::vector<std::string>{"250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354", "250 2.0.0",
                                 "221 2.0.0"});
  // Two recipients: the Received header names none of them.
  CHECK(d.store.messages.at(42).body.find("\tfor <") == std::string::npos);
  CHECK(d.store.messages.at(42).committed);
}

TEST_CASE("too many errors end the session with 421", "[session]") {
  Dialogue d;
  d.hello();
  auto out = d.send("A\r\nB\r\nC\r\nD\r\nE\r\nNOOP\r\n");
  CHECK(codes(out) == std::vector<std::string>{"500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1",
                                               "421 4.7.0"});
  CHECK(d.session().closing());
}

TEST_CASE("a browser's request is not SMTP", "[session]") {
  Dialogue d;
  d.send("");
  CHECK(codes(d.send("GET / HTTP/1.1\r\nHost: x\r\n")) == std::vector<std::string>{"221 2.7.0"});
  CHECK(d.session().closing());
}

TEST_CASE("disconnect, timeout and shutdown during DATA abort the message", "[session]") {
  auto how = GENERATE(as<std::string>{}, "disconnect", "timeout", "shutdown");
  Dialogue d;
  d.hello();
  d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\npartial\r\n");
  std::string out = how == "disconnect" ? d.disconnect() : how == "timeout" ? d.timeout() : d.shutdown();
  if (how == "timeout") CHECK(codes(out) == std::vector<std::string>{"421 4.4.2"});
  if (how == "shutdown") CHECK(codes(out) == std::vector<std::string>{"421 4.3.2"});
  if (how == "disconnect") CHECK(out.empty());
  CHECK(d.session().closing());
  CHECK(d.store.messages.at(42).aborted);
  CHECK_FALSE(d.store.messages.at(42).committed);
}

TEST_CASE("a disconnect while the last chunk is being written never commits", "[session]") {
  Dialogue d;
  d.hello();
  d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nbody\r\n");
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

}  // namespace wsmtp::listener
