// Test helpers for the milter chain's tests: a Chain on an event_base driven
// from the test thread, Events as a session would submit them, and scripts
// for the fake milter (fake_milter.h).
#pragma once

#include <catch2/catch.hpp>

#include <event2/event.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fake_milter.h"
#include "handles.h"
#include "milter/chain.h"

namespace wsmtp::listener::milter::test {

using namespace std::chrono_literals;

// A Chain on an event_base of its own, driven from the test thread.
struct Harness {
  explicit Harness(MilterSpecs specs, event_base* shared_base = nullptr) {
    // As in the daemons (common/daemon.cpp): a milter that closes while we
    // write must not kill the process.
    std::signal(SIGPIPE, SIG_IGN);
    if (!shared_base) {
      own_base.reset(event_base_new());
      shared_base = own_base.get();
    }
    base = shared_base;
    // Wakes the loop every 10 ms so run_until() can look at the clock.
    tick.reset(event_new(
        base, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
    const timeval tv{0, 10'000};
    evtimer_add(tick.get(), &tv);
    Chain::Callbacks callbacks{
        .verdict = [this](Verdict v) { verdicts.push_back(std::move(v)); },
        .drained = [this] { ++drained; },
    };
    chain = std::make_unique<Chain>(base, std::make_shared<const MilterSpecs>(std::move(specs)), "test", callbacks);
  }

  template <class Done>
  bool run_until(Done done, std::chrono::milliseconds limit = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      event_base_loop(base, EVLOOP_ONCE);
    }
    return true;
  }
  // Destroys the chain and lets libevent finish closing its sockets (it
  // closes a freed bufferevent's fd in its next loop iteration).
  void finish() {
    chain.reset();
    event_base_loop(base, EVLOOP_NONBLOCK);
  }
  // Submits an awaited event and returns its verdict.
  Verdict ask(Event e) {
    const std::size_t before = verdicts.size();
    chain->submit(std::move(e));
    REQUIRE(run_until([&] { return verdicts.size() > before; }));
    return verdicts.back();
  }

  common::EventBasePtr own_base;
  event_base* base = nullptr;
  common::EventPtr tick;
  std::vector<Verdict> verdicts;
  int drained = 0;
  std::unique_ptr<Chain> chain;
};

inline Event make(Stage stage, bool awaited) {
  Event e;
  e.stage = stage;
  e.awaited = awaited;
  return e;
}
inline Event connect_event() {
  Event e = make(Stage::connect, true);
  e.client_name = "[192.0.2.1]";
  e.family = '4';
  e.port = 4321;
  e.address = "192.0.2.1";
  e.macros = {{"j", "mx.example"}, {"_", "[192.0.2.1]"}, {"{daemon_name}", "wsmtp"}, {"{client_addr}", "192.0.2.1"}};
  return e;
}
inline Event helo_event() {
  Event e = make(Stage::helo, true);
  e.text = "client.example";
  return e;
}
inline Event mail_event() {
  Event e = make(Stage::mail, true);
  e.args = {"<a@example.org>", "SIZE=100"};
  e.macros = {{"{auth_type}", "PLAIN"}, {"{mail_addr}", "a@example.org"}};
  return e;
}
inline Event rcpt_event(std::string to = "<b@example.net>") {
  Event e = make(Stage::rcpt, true);
  e.args = {to};
  e.macros = {{"{rcpt_addr}", to.substr(1, to.size() - 2)}};
  return e;
}
inline Event data_event() {
  Event e = make(Stage::data, true);
  e.macros = {{"i", "Q1"}};
  return e;
}
inline Event header_event(std::string name, std::string value) {
  Event e = make(Stage::header, false);
  e.text = std::move(name);
  e.value = std::move(value);
  return e;
}
inline Event eoh_event() {
  Event e = make(Stage::end_of_headers, false);
  e.macros = {{"i", "Q1"}};
  return e;
}
inline Event body_event(std::string bytes) {
  Event e = make(Stage::body, false);
  e.bytes = std::move(bytes);
  return e;
}
inline Event eom_event() {
  Event e = make(Stage::end_of_message, true);
  e.macros = {{"i", "Q1"}};
  return e;
}

inline std::vector<char> commands(const std::vector<std::string>& packets) {
  std::vector<char> out;
  for (const auto& p : packets) out.push_back(p.at(4));
  return out;
}

// The commands a milter received, without its SMFIC_MACRO packets.
inline std::string commands_without_macros(const std::vector<std::string>& packets) {
  std::string out;
  for (const auto& p : packets) {
    if (p.at(4) != 'D') out += p.at(4);
  }
  return out;
}

// A milter that negotiates `actions` and `steps`, answers `target` with the
// packet `reply` and every other command that wants an answer with
// SMFIR_CONTINUE, until SMFIC_QUIT.
inline std::function<void(FakeSession&)> reply_at(char target, std::string reply, std::uint32_t actions = 0,
                                                  std::uint32_t steps = 0) {
  return [=](FakeSession& s) {
    s.negotiate(actions, steps);
    for (;;) {
      test::Packet p = s.command();
      if (p.command == 'Q') return;
      if (p.command == 'A') continue;
      if (p.command == target) {
        s.send_raw(reply);
      } else {
        s.send('c');
      }
    }
  };
}

// A port on loopback where nothing listens.
inline std::uint16_t closed_port() {
  FakeMilter probe;
  return probe.spec("x").port;
}

}  // namespace wsmtp::listener::milter::test
