// What the SMTP/LMTP client reads from EHLO/LHLO and puts on its MAIL command,
// and what it reports when a server answers the final dot, or vanishes there.
#include "deliver/smtp_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>
#include <thread>

#include <catch2/catch.hpp>

using namespace wsmtp::common::smtp;

namespace {
ServerExtensions announced(const std::vector<std::string>& lines) {
  std::vector<std::string> wire;
  for (std::size_t i = 0; i < lines.size(); ++i)
    wire.push_back("250" + std::string(i + 1 < lines.size() ? "-" : " ") + lines[i]);
  auto reply = parse_reply(wire);
  REQUIRE(reply);
  return parse_ehlo(*reply);
}
}  // namespace

TEST_CASE("SIZE is recognised with a limit, without one, and as 0") {
  auto limited = announced({"relay.example", "PIPELINING", "SIZE 10240000", "8BITMIME"});
  CHECK(limited.size);
  CHECK(limited.size_limit == 10240000u);
  CHECK(limited.pipelining);
  CHECK(limited.eightbitmime);
  auto bare = announced({"lmtp.example", "8BITMIME", "SIZE"});  // Dovecot's LMTP, smtp-sink -L
  CHECK(bare.size);
  CHECK(bare.size_limit == 0u);
  CHECK(announced({"x.example", "size 0"}).size);
  auto none = announced({"x.example", "SIZEX 5", "PIPELINING"});
  CHECK_FALSE(none.size);
}

TEST_CASE("MAIL carries SIZE= whenever the server takes SIZE, BODY=8BITMIME when declared and taken") {
  Envelope e{"a@example.org", {"b@example.test"}, 4096, true};
  auto with = announced({"x.example", "SIZE", "8BITMIME"});
  CHECK(mail_command(e, with) == "MAIL FROM:<a@example.org> SIZE=4096 BODY=8BITMIME");
  auto without = announced({"x.example"});
  CHECK(mail_command(e, without) == "MAIL FROM:<a@example.org>");
  e.from.clear();
  e.declare_8bit = false;
  CHECK(mail_command(e, announced({"x.example", "SIZE 1000"})) == "MAIL FROM:<> SIZE=4096");
}

TEST_CASE("MAIL carries SMTPUTF8 only for a UTF-8 address to a server that takes it") {
  auto utf8 = announced({"x.example", "SMTPUTF8"});
  CHECK(utf8.smtputf8);
  Envelope ascii{"a@example.org", {"b@example.test"}, 0, false};
  CHECK_FALSE(needs_smtputf8(ascii));
  CHECK(mail_command(ascii, utf8) == "MAIL FROM:<a@example.org>");
  Envelope unicode{"a@example.org", {"b\xc3\xa9@example.test"}, 0, false};
  CHECK(needs_smtputf8(unicode));
  CHECK(mail_command(unicode, utf8) == "MAIL FROM:<a@example.org> SMTPUTF8");
  unicode.recipients = {"b@example.test"};
  unicode.from = "\xc3\xa9@example.org";
  CHECK(needs_smtputf8(unicode));
}

// --- against a scripted server on a loopback port ---------------------------

namespace {

// Accepts one connection and plays a minimal SMTP server (no extensions). At
// the final dot it answers 250, or with drop_at_dot closes the connection
// without a reply, as a relay that dies (or a link that breaks) just then.
class ScriptedServer {
 public:
  explicit ScriptedServer(bool drop_at_dot) : drop_at_dot_(drop_at_dot) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_, 1) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    thread_.join();
    ::close(listener_);
  }
  int port() const { return port_; }
  std::string body() const { return body_; }
  const std::vector<std::string>& commands() const { return commands_; }  // read after the server thread ended

 private:
  void serve() {
    const int fd = ::accept(listener_, nullptr, nullptr);
    if (fd < 0) return;
    say(fd, "220 scripted.example ESMTP\r\n");
    bool in_data = false;
    for (std::string line; read_line(fd, line);) {
      if (!in_data) commands_.push_back(line);
      if (in_data) {
        if (line != ".") {
          body_ += line + "\n";
          continue;
        }
        in_data = false;
        if (drop_at_dot_) break;  // the message is complete here, the reply never leaves
        say(fd, "250 2.0.0 queued\r\n");
      } else if (line.rfind("EHLO", 0) == 0) {
        say(fd, "250 scripted.example\r\n");
      } else if (line == "DATA") {
        in_data = true;
        say(fd, "354 go ahead\r\n");
      } else if (line == "QUIT") {
        say(fd, "221 bye\r\n");
        break;
      } else {
        say(fd, "250 2.1.0 ok\r\n");  // MAIL, RCPT, RSET, NOOP
      }
    }
    ::close(fd);
  }
  // Runs on the server thread, where Catch's assertions must not be used; a
  // failed write shows as the client's error.
  static void say(int fd, std::string_view text) {
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) ::shutdown(fd, SHUT_RDWR);
  }
  bool read_line(int fd, std::string& line) {
    line.clear();
    for (char c; ::read(fd, &c, 1) == 1;) {
      if (c == '\n') {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return true;
      }
      line += c;
    }
    return false;
  }

  bool drop_at_dot_;
  int listener_ = -1;
  int port_ = 0;
  std::string body_;
  std::vector<std::string> commands_;
  std::thread thread_;
};

ClientOptions plain_options() {
  ClientOptions o;
  o.helo_name = "client.example";
  o.tls = TlsPolicy::none;
  o.command_timeout = std::chrono::seconds(5);
  o.data_timeout = std::chrono::seconds(5);
  return o;
}

const auto kBody = [](const ChunkSink& sink) { sink("Subject: t\r\n\r\nhello\r\n"); };

}  // namespace

TEST_CASE("a reply to the final dot is the transaction's result") {
  ScriptedServer server(false);
  SmtpClient client(plain_options());
  REQUIRE_FALSE(client.open("127.0.0.1", server.port()));
  auto result = client.send(Envelope{"a@example.org", {"b@example.test"}, 0, false}, kBody);
  REQUIRE(result.data);
  CHECK(result.data->code == 250);
  client.quit();
}

TEST_CASE("a connection lost after the final dot is reported as a possible duplicate") {
  ScriptedServer server(true);
  SmtpClient client(plain_options());
  REQUIRE_FALSE(client.open("127.0.0.1", server.port()));
  try {
    client.send(Envelope{"a@example.org", {"b@example.test"}, 0, false}, kBody);
    FAIL("send returned without the final reply");
  } catch (const ClientError& e) {
    const std::string what = e.what();
    CHECK(what.find("after the end of data") != std::string::npos);
    CHECK(what.find("may then be sent more than once") != std::string::npos);
  }
  CHECK(server.body() == "Subject: t\n\nhello\n");  // the server did get the whole message
}

// RFC 6531 §3.2: a UTF-8 address never goes to a server without SMTPUTF8 (the
// scripted server announces nothing); it fails with 5.6.7 as if refused there,
// while the ASCII recipients of the same message are delivered.
TEST_CASE("a server without SMTPUTF8 gets the ASCII recipients only; UTF-8 ones fail with 5.6.7") {
  const std::string utf8 = "j\xc3\xb6rg@example.test";
  std::vector<std::string> seen;
  {
    ScriptedServer server(false);
    SmtpClient client(plain_options());
    REQUIRE_FALSE(client.open("127.0.0.1", server.port()));
    auto result = client.send(Envelope{"a@example.org", {"b@example.test", utf8, "c@example.test"}, 0, false}, kBody);
    CHECK(result.outcome(0).code == 250);
    CHECK(result.outcome(1).code == 553);
    CHECK(result.outcome(1).status == EnhancedCode{5, 6, 7});
    CHECK(result.outcome(2).code == 250);
    client.quit();
    seen = server.commands();
  }
  CHECK(std::find(seen.begin(), seen.end(), "RCPT TO:<b@example.test>") != seen.end());
  CHECK(std::find(seen.begin(), seen.end(), "RCPT TO:<c@example.test>") != seen.end());
  for (const auto& line : seen) CHECK(line.find(utf8) == std::string::npos);

  ScriptedServer server(false);
  SmtpClient client(plain_options());
  REQUIRE_FALSE(client.open("127.0.0.1", server.port()));
  auto result = client.send(Envelope{utf8, {"b@example.test"}, 0, false}, kBody);
  CHECK(result.outcome(0).code == 553);
  CHECK(result.outcome(0).status == EnhancedCode{5, 6, 7});
  CHECK_FALSE(result.data);
  client.quit();
}

TEST_CASE("every reply and flushed write is reported as progress (lease renewal depends on it)") {
  ScriptedServer server(false);
  auto options = plain_options();
  int progress = 0;
  options.on_progress = [&progress] { ++progress; };
  SmtpClient client(options);
  REQUIRE_FALSE(client.open("127.0.0.1", server.port()));
  const int after_greeting = progress;
  CHECK(after_greeting >= 2);  // 220 and the EHLO reply
  auto result = client.send(Envelope{"a@example.org", {"b@example.test"}, 0, false}, kBody);
  REQUIRE(result.data);
  // MAIL, RCPT, DATA's 354 and the final reply at least, plus the body's flush.
  CHECK(progress - after_greeting >= 5);
  client.quit();
}
