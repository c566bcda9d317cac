// The session test harness: a Session driven directly with the bytes a client
// would send, its store ops completed synchronously on a FakeStore, and helpers
// to read the replies. Shared by the session's test files.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backlog_watch.h"
#include "fake_store.h"
#include "queue_ids.h"
#include "session.h"
#include "store_op.h"

namespace wsmtp::listener::test {

inline ListenerConfig test_config() {
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
    context.queue_ids = &ids;
    context.queue_full = &queue_full;
    context.backlogs = &backlogs;
    session_ = std::make_unique<Session>(std::make_shared<const ListenerConfig>(config_), std::move(context));
  }

  // Sends bytes and returns every reply produced meanwhile.
  std::string send(std::string_view bytes) {
    input_.append(bytes);
    for (;;) {
      run_ops();
      if (session_->closing()) break;
      if (session_->wants_tls()) break;
      if (auto raw = session_->raw_remaining(); raw > 0) {
        if (input_.empty()) break;
        auto n = std::min<std::size_t>({raw, input_.size(), Session::kDataPiece});
        session_->on_raw(std::string_view(input_).substr(0, n));
        input_.erase(0, n);
        continue;
      }
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
  std::string deadline(Deadlines::Kind kind) {
    session_->on_deadline(kind);
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
  // The listener's reserve, 4 ids a block so tests see it run low and refill;
  // refill = false leaves it empty until a session has to ask for ids.
  QueueIdReserve ids{4};
  bool refill = true;
  // Every TakeQueueId is answered "no queue shard can take mail" (ShardStores::submit).
  bool no_shard = false;
  std::atomic<bool> queue_full{false};                    // what QueueWatch would set
  BacklogWatch backlogs{{}, 0, std::chrono::seconds(1)};  // no thread: tests call observe()
  Session& session() { return *session_; }
  // With [listener] milters: every event the session gave its chain, and the
  // verdict for each awaited one (proceed unless a test says otherwise).
  std::vector<milter::Event> milter_events;
  std::function<milter::Verdict(const milter::Event&)> milter = [](const milter::Event&) { return milter::Verdict{}; };

 private:
  // Like a loop: a session's op, then a refill if the reserve runs low. A
  // session waiting with no store op waits for its milters: `milter` answers.
  void run_ops() {
    take_milter_events();
    while (session_->waiting()) {
      auto op = session_->take_store_op();
      if (!op) {
        take_milter_events();
        REQUIRE(milter);
        REQUIRE(!milter_events.empty());
        REQUIRE(milter_events.back().awaited);
        auto verdict = milter(milter_events.back());
        session_->on_milter_verdict(verdict);
        take_milter_events();
        continue;
      }
      if (no_shard && std::holds_alternative<TakeQueueId>(*op)) {
        StoreResult none;  // what the loop answers when no queue shard can take mail
        none.no_shard = true;
        session_->on_store_result(none);
        continue;
      }
      session_->on_store_result(run_store_op(store, *op, &ids));
    }
    if (refill && ids.refill_due({})) REQUIRE(run_store_op(store, RefillQueueIds{}, &ids).ok);
  }
  void take_milter_events() {
    for (auto& e : session_->take_milter_events()) milter_events.push_back(std::move(e));
  }
  std::string take() {
    auto out = session_->take_output();
    transcript_ += out;
    return out;
  }

  ListenerConfig config_;
  std::unique_ptr<Session> session_;

 public:
  // What the server does once the 220 to STARTTLS is out and the handshake is done.
  void tls_handshake() {
    REQUIRE(session_->wants_tls());
    input_.clear();  // pipelined plaintext is discarded (CVE-2011-0411)
    session_->on_tls_started("using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)");
    take();
  }

 private:
  std::string input_;
  std::string transcript_;
};

// "250 2.1.0 Sender ok\r\n354 ...\r\n" -> {"250 2.1.0", "354"}: code and enhanced
// code of each final reply line.
inline std::vector<std::string> codes(const std::string& output) {
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

inline constexpr const char* kHeader =
    "Received: from client.example.net ([192.0.2.10])\r\n"
    "\tby mx.example.org with ESMTP id 42\r\n"
    "\tfor <alice@example.org>; Tue, 14 Nov 2023 22:13:20 +0000\r\n";

inline constexpr const char* kTransaction = "MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\n";

inline std::string base64(std::string_view text) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < text.size(); i += 3) {
    unsigned v = (unsigned char)text[i] << 16 | (unsigned char)text[i + 1] << 8 | (unsigned char)text[i + 2];
    for (int k = 18; k >= 0; k -= 6) out += table[(v >> k) & 63];
  }
  if (i + 1 == text.size()) {
    unsigned v = (unsigned char)text[i] << 16;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == text.size()) {
    unsigned v = (unsigned char)text[i] << 16 | (unsigned char)text[i + 1] << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

inline ListenerConfig tls_config() {
  auto c = test_config();
  c.tls_cert_file = "/unused/cert.pem";  // the session only asks whether TLS is configured
  c.tls_key_file = "/unused/key.pem";
  return c;
}

}  // namespace wsmtp::listener::test
