// What the SMTP/LMTP client reads from EHLO/LHLO and puts on its MAIL command,
// and what it reports when a server answers the final dot, or vanishes there.
#include "deliver/smtp_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string_view>
#include <thread>

#include "handles.h"

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

// A self-signed certificate for 127.0.0.1 (its IP subjectAltName), so a
// client with TlsPolicy::required and this certificate as its only root
// verifies the scripted server as it would a real relay.
struct TestCertificate {
  std::unique_ptr<EVP_PKEY, wsmtp::common::CFree<EVP_PKEY_free>> key{EVP_EC_gen("P-256")};
  std::unique_ptr<X509, wsmtp::common::CFree<X509_free>> cert{X509_new()};
  std::string pem_path;

  TestCertificate() {
    REQUIRE(key);
    REQUIRE(cert);
    X509* x = cert.get();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key.get());
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
    REQUIRE(san);
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    REQUIRE(X509_sign(x, key.get(), EVP_sha256()) > 0);
    char path[] = "/tmp/wsmtp-client-test-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    pem_path = path;
    FILE* f = ::fdopen(fd, "w");
    REQUIRE(f);
    REQUIRE(PEM_write_X509(f, x) == 1);
    std::fclose(f);
  }
  ~TestCertificate() { ::unlink(pem_path.c_str()); }
};

enum class Script {
  normal,         // 250 at the final dot
  drop_at_dot,    // closes without a reply at the final dot, as a relay that dies (or a link that breaks) just then
  data_250,       // answers DATA itself with 250, as a broken or lying server
  inject_at_tls,  // announces STARTTLS, and sends plaintext replies behind its 220, as a man in the middle
};

// Accepts one connection and plays a minimal SMTP server (no extensions but
// STARTTLS for inject_at_tls; after the handshake it goes on inside TLS).
class ScriptedServer {
 public:
  explicit ScriptedServer(bool drop_at_dot) : ScriptedServer(drop_at_dot ? Script::drop_at_dot : Script::normal) {}
  explicit ScriptedServer(Script script, const TestCertificate* cert = nullptr) : script_(script), cert_(cert) {
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
    finish();
    ::close(listener_);
  }
  // Waits for the server to end its session (the client closed or quit).
  void finish() {
    if (thread_.joinable()) thread_.join();
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
        if (script_ == Script::drop_at_dot) break;  // the message is complete here, the reply never leaves
        say(fd, "250 2.0.0 queued\r\n");
      } else if (line.rfind("EHLO", 0) == 0) {
        say(fd, script_ == Script::inject_at_tls && !ssl_ ? "250-scripted.example\r\n250 STARTTLS\r\n"
                                                          : "250 scripted.example\r\n");
      } else if (line == "STARTTLS" && cert_) {
        // The 220 and, in the same packet, a forged answer to the EHLO that the
        // client sends inside TLS; the shift makes every later reply answer the
        // command before it, so DATA gets the RCPT's 250.
        say(fd, "220 2.0.0 ready\r\n250-injected.example\r\n250 PIPELINING\r\n");
        if (!start_tls(fd)) break;
      } else if (line == "DATA" && script_ == Script::data_250) {
        say(fd, "250 2.0.0 queued\r\n");
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
  // failed handshake or write shows as the client's error.
  bool start_tls(int fd) {
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    if (!ctx_ || SSL_CTX_use_certificate(ctx_.get(), cert_->cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx_.get(), cert_->key.get()) != 1)
      return false;
    ssl_.reset(SSL_new(ctx_.get()));
    return ssl_ && SSL_set_fd(ssl_.get(), fd) == 1 && SSL_accept(ssl_.get()) == 1;
  }
  void say(int fd, std::string_view text) {
    const int n = static_cast<int>(text.size());
    const bool ok = ssl_ ? SSL_write(ssl_.get(), text.data(), n) == n
                         : ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    if (!ok) ::shutdown(fd, SHUT_RDWR);
  }
  bool read_byte(int fd, char& c) { return ssl_ ? SSL_read(ssl_.get(), &c, 1) == 1 : ::read(fd, &c, 1) == 1; }
  bool read_line(int fd, std::string& line) {
    line.clear();
    for (char c; read_byte(fd, c);) {
      if (c == '\n') {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return true;
      }
      line += c;
    }
    return false;
  }

  Script script_;
  const TestCertificate* cert_;
  std::unique_ptr<SSL_CTX, wsmtp::common::CFree<SSL_CTX_free>> ctx_;
  std::unique_ptr<SSL, wsmtp::common::CFree<SSL_free>> ssl_;
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

// Issue 15, item 8: a relay (or a man in the middle) must not make mail vanish.

TEST_CASE("a positive answer to DATA before the body is not a delivery") {
  ScriptedServer server(Script::data_250);
  SmtpClient client(plain_options());
  REQUIRE_FALSE(client.open("127.0.0.1", server.port()));
  try {
    auto result = client.send(Envelope{"a@example.org", {"b@example.test"}, 0, false}, kBody);
    FAIL("send reported a result (DATA " << (result.data ? result.data->code : 0) << ") for a body never sent");
  } catch (const ClientError& e) {
    CHECK(std::string(e.what()).find("answered DATA with 250 instead of 354") != std::string::npos);
  }
  CHECK(server.body().empty());
}

// The man in the middle answers STARTTLS and, behind the 220 in plaintext, the
// EHLO the client will send inside TLS. The TLS session itself is genuine (the
// certificate verifies, tls = required), so only the plaintext gives it away.
TEST_CASE("plaintext behind the STARTTLS reply ends the session before TLS, even with TLS required") {
  TestCertificate cert;
  ScriptedServer server(Script::inject_at_tls, &cert);
  auto options = plain_options();
  options.tls = TlsPolicy::required;
  options.ca_file = cert.pem_path;
  try {
    SmtpClient client(options);
    auto refused = client.open("127.0.0.1", server.port());
    // Without the check, TLS starts, the forged EHLO answer is taken, and the
    // message below is reported delivered by the RCPT's 250 with no body sent.
    auto result = client.send(Envelope{"a@example.org", {"b@example.test"}, 0, false}, kBody);
    FAIL("the session went on after the injection: "
         << (refused ? refused->text : "")
         << (result.data ? " DATA " + std::to_string(result.data->code) : std::string()));
  } catch (const ClientError& e) {
    CHECK(std::string(e.what()).find("data after the reply to STARTTLS") != std::string::npos);
  }
  server.finish();
  const auto& seen = server.commands();
  CHECK(std::find(seen.begin(), seen.end(), "STARTTLS") != seen.end());
  CHECK(std::none_of(seen.begin(), seen.end(), [](const std::string& c) { return c.rfind("MAIL", 0) == 0; }));
}
