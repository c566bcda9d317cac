// Backpressure in the SMTP dialogue (issue 16): MAIL and RCPT get 451 4.7.1
// while one of the sender's backlog keys is at its quota in the watch's
// snapshot, with no store call; the message carries the keys and the fair-order
// client that its kind of sender gets.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dialogue.h"

namespace wsmtp::listener {
namespace {

using namespace test;
using Codes = std::vector<std::string>;

ListenerConfig quota_config() {
  auto c = test_config();
  c.backlog_quotas = BacklogQuotas{.sender_domain = 10, .client = 20, .user = 5, .trusted = 100};
  c.trusted_networks = {*Cidr::parse("10.0.0.0/8")};
  c.limit_exceptions = {*Cidr::parse("127.0.0.0/8")};
  return c;
}

const common::NewMessage& stored(Dialogue& d) {
  REQUIRE_FALSE(d.store.messages.empty());
  return d.store.messages.rbegin()->second.envelope;
}

}  // namespace

TEST_CASE("a sender domain over its quota gets 451 4.7.1 at MAIL; another domain is accepted", "[session][backlog]") {
  Dialogue d(quota_config());
  d.hello();
  d.backlogs.observe({{"d:spam.example", 10}});
  for (int i = 0; i < 3; ++i) {
    auto out = d.send("MAIL FROM:<bulk@SPAM.example>\r\n");
    CHECK(codes(out) == Codes{"451 4.7.1"});
    CHECK(out.find("Too much mail from spam.example is waiting for delivery") != std::string::npos);
  }
  CHECK_FALSE(d.session().closing());  // not the client's error: no max_errors, no tarpit
  CHECK(d.session().take_tarpit().count() == 0);
  CHECK(d.store.calls.empty());
  CHECK(codes(d.send("RCPT TO:<bob@example.org>\r\n")) == Codes{"503 5.5.1"});
  CHECK(codes(d.send("MAIL FROM:<friend@ok.example>\r\n")) == Codes{"250 2.1.0"});
  CHECK(codes(d.send("RCPT TO:<bob@example.org>\r\nDATA\r\n")) == Codes{"250 2.1.5", "354"});
  CHECK(codes(d.send("Subject: hi\r\n\r\nhi\r\n.\r\n")) == Codes{"250 2.0.0"});
  CHECK(stored(d).backlog_keys == std::vector<std::string>{"c:192.0.2.10", "d:ok.example"});
  CHECK(stored(d).fair_client == "192.0.2.10");
  CHECK(stored(d).client_addr == "192.0.2.10");
}

TEST_CASE("RCPT checks again: a sender that went over quota after MAIL is stopped", "[session][backlog]") {
  Dialogue d(quota_config());
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<bulk@spam.example>\r\nRCPT TO:<bob@example.org>\r\n")) ==
        Codes{"250 2.1.0", "250 2.1.5"});
  d.backlogs.observe({{"c:192.0.2.10", 20}});
  CHECK(codes(d.send("RCPT TO:<alice@example.org>\r\n")) == Codes{"451 4.7.1"});
  CHECK(d.store.calls == std::vector<std::string>{"check bob@example.org"});

  // Below the quota again: the next recipient is looked up as usual.
  d.backlogs.observe({{"c:192.0.2.10", 19}});
  CHECK(codes(d.send("RCPT TO:<alice@example.org>\r\n")) == Codes{"250 2.1.5"});
  // Every recipient refused: a pipelined DATA is told there is none valid.
  CHECK(codes(d.send("RSET\r\nMAIL FROM:<bulk@spam.example>\r\n")) == Codes{"250 2.0.0", "250 2.1.0"});
  d.backlogs.observe({{"d:spam.example", 10}});
  CHECK(codes(d.send("RCPT TO:<bob@example.org>\r\nDATA\r\n")) == Codes{"451 4.7.1", "554 5.5.1"});
}

TEST_CASE("an authenticated user is keyed by user alone, whatever the domain", "[session][backlog]") {
  auto config = quota_config();
  config.tls_cert_file = "/unused/cert.pem";
  config.tls_key_file = "/unused/key.pem";
  Dialogue d(config);
  d.hello();
  d.send("STARTTLS\r\n");
  d.tls_handshake();
  d.send("EHLO client.example.net\r\n");
  CHECK(codes(d.send("AUTH PLAIN " + base64(std::string("\0carol\0s3cret", 13)) + "\r\n")) == Codes{"235 2.7.0"});
  // Its domain and client are over quota; only the user counts.
  d.backlogs.observe({{"d:spam.example", 1000}, {"c:192.0.2.10", 1000}});
  CHECK(codes(d.send("MAIL FROM:<carol@spam.example>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\n")) ==
        Codes{"250 2.1.0", "250 2.1.5", "354"});
  CHECK(codes(d.send("Subject: hi\r\n\r\nhi\r\n.\r\n")) == Codes{"250 2.0.0"});
  CHECK(stored(d).backlog_keys == std::vector<std::string>{"u:carol"});
  CHECK(stored(d).fair_client.empty());
  d.backlogs.observe({{"u:carol", 5}});
  auto out = d.send("MAIL FROM:<carol@ok.example>\r\n");
  CHECK(codes(out) == Codes{"451 4.7.1"});
  CHECK(out.find("Too much mail from user carol") != std::string::npos);
}

TEST_CASE("trusted and limit-exempt clients are keyed by client, against the trusted quota", "[session][backlog]") {
  for (const char* client : {"10.1.2.3", "127.0.0.1"}) {
    INFO(client);
    Dialogue d(quota_config(), client);
    d.hello();
    const std::string key = std::string("c:") + client;
    d.backlogs.observe({{"d:spam.example", 1000}, {key, 99}});  // under the trusted quota of 100
    CHECK(codes(d.send("MAIL FROM:<app@spam.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")) ==
          Codes{"250 2.1.0", "250 2.1.5", "354"});
    CHECK(codes(d.send("Subject: hi\r\n\r\nhi\r\n.\r\n")) == Codes{"250 2.0.0"});
    CHECK(stored(d).backlog_keys == std::vector<std::string>{key});
    CHECK(stored(d).fair_client.empty());  // ordered by sender only (schema 020)
    CHECK(stored(d).client_addr == client);
    d.backlogs.observe({{key, 100}});
    CHECK(codes(d.send("MAIL FROM:<app@ok.example>\r\n")) == Codes{"451 4.7.1"});
  }
}

TEST_CASE("a streamed message carries its keys, and its commit the fair-order client", "[session][backlog]") {
  for (const char* client : {"192.0.2.10", "127.0.0.1"}) {
    INFO(client);
    auto config = quota_config();
    config.max_message_size = 1 << 20;
    Dialogue d(config, client);
    d.hello();
    CHECK(codes(d.send("MAIL FROM:<a@Big.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")) ==
          Codes{"250 2.1.0", "250 2.1.5", "354"});
    std::string body = "Subject: big\r\n\r\n";
    while (body.size() < Session::kBodyChunkSize + 1000) body += std::string(70, 'x') + "\r\n";
    CHECK(codes(d.send(body + ".\r\n")) == Codes{"250 2.0.0"});
    const bool other = std::string(client) == "192.0.2.10";
    CHECK(stored(d).backlog_keys == (other ? std::vector<std::string>{"c:192.0.2.10", "d:big.example"}
                                           : std::vector<std::string>{"c:127.0.0.1"}));
    CHECK(d.store.commit_fair_clients == std::vector<std::string>{other ? client : ""});
  }
}

}  // namespace wsmtp::listener
