// The milter chain against scripted milters on loopback (fake_milter.h): the
// exact packets each stage sends after negotiation, every verdict, the order
// of several milters, the changes at end of message, every failure and its
// default action, backpressure, and one stalled milter not holding another
// chain. Timeouts are a few hundred milliseconds so the failures are quick.
#include <catch2/catch.hpp>

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fake_milter.h"
#include "handles.h"
#include "milter/chain.h"

namespace wsmtp::listener::milter {

using namespace std::chrono_literals;
using test::FakeMilter;
using test::FakeSession;

namespace {

// A Chain on an event_base of its own, driven from the test thread.
struct Harness {
  explicit Harness(MilterSpecs specs, event_base* shared_base = nullptr) {
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

Event make(Stage stage, bool awaited) {
  Event e;
  e.stage = stage;
  e.awaited = awaited;
  return e;
}
Event connect_event() {
  Event e = make(Stage::connect, true);
  e.client_name = "[192.0.2.1]";
  e.family = '4';
  e.port = 4321;
  e.address = "192.0.2.1";
  e.macros = {{"j", "mx.example"}, {"_", "[192.0.2.1]"}, {"{daemon_name}", "wsmtp"}, {"{client_addr}", "192.0.2.1"}};
  return e;
}
Event helo_event() {
  Event e = make(Stage::helo, true);
  e.text = "client.example";
  return e;
}
Event mail_event() {
  Event e = make(Stage::mail, true);
  e.args = {"<a@example.org>", "SIZE=100"};
  e.macros = {{"{auth_type}", "PLAIN"}, {"{mail_addr}", "a@example.org"}};
  return e;
}
Event rcpt_event(std::string to = "<b@example.net>") {
  Event e = make(Stage::rcpt, true);
  e.args = {to};
  e.macros = {{"{rcpt_addr}", to.substr(1, to.size() - 2)}};
  return e;
}
Event data_event() {
  Event e = make(Stage::data, true);
  e.macros = {{"i", "Q1"}};
  return e;
}
Event header_event(std::string name, std::string value) {
  Event e = make(Stage::header, false);
  e.text = std::move(name);
  e.value = std::move(value);
  return e;
}
Event eoh_event() {
  Event e = make(Stage::end_of_headers, false);
  e.macros = {{"i", "Q1"}};
  return e;
}
Event body_event(std::string bytes) {
  Event e = make(Stage::body, false);
  e.bytes = std::move(bytes);
  return e;
}
Event eom_event() {
  Event e = make(Stage::end_of_message, true);
  e.macros = {{"i", "Q1"}};
  return e;
}

std::vector<char> commands(const std::vector<std::string>& packets) {
  std::vector<char> out;
  for (const auto& p : packets) out.push_back(p.at(4));
  return out;
}

// Answers every command with SMFIR_CONTINUE except those listed.
void answer_all(FakeSession& s, char command, const std::string& reply, char reply_command = 0) {
  for (;;) {
    test::Packet p = s.command();
    if (p.command == 'Q' || p.command == 'A') continue;
    if (p.command == command) {
      if (reply_command) {
        s.send(reply_command, reply);
      } else {
        s.send_raw(reply);
      }
      return;
    }
    s.send('c');
  }
}

}  // namespace

TEST_CASE("milter chain: negotiation, NO/NR steps and macro lists decide the exact packets", "[milter_chain]") {
  FakeMilter fake;
  fake.serve([](FakeSession& s) {
    s.negotiate(action::add_headers, step::no_helo | step::no_reply_rcpt | step::no_body,
                {{MacroStage::connect, "{client_addr} j"}, {MacroStage::mail, "{mail_addr}"}});
    for (char expected : {'C', 'M', 'R', 'T', 'L', 'N', 'E'}) {
      test::Packet p = s.command();
      if (p.command != expected) throw std::runtime_error(std::string("unexpected command ") + p.command);
      if (p.command != 'R') s.send('c');
    }
    s.drain();
  });
  Harness h({fake.spec("fake")});
  CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(helo_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(rcpt_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(data_event()).kind == Verdict::Kind::proceed);
  h.chain->submit(header_event("Subject", " hello\r\n world"));
  h.chain->submit(eoh_event());
  h.chain->submit(body_event("body\r\n"));
  Verdict eom = h.ask(eom_event());
  CHECK(eom.kind == Verdict::Kind::proceed);
  CHECK(eom.changes.empty());
  h.chain.reset();
  fake.join();
  CHECK(fake.error() == "");
  const std::vector<std::string> expected = {
      encode_negotiate(6, action::all, step::all_we_offer),
      encode_macros(Command::connect, {{"j", "mx.example"}, {"{client_addr}", "192.0.2.1"}}),
      encode_connect("[192.0.2.1]", '4', 4321, "192.0.2.1"),
      encode_macros(Command::mail, {{"{mail_addr}", "a@example.org"}}),
      encode_mail({"<a@example.org>", "SIZE=100"}),
      encode_macros(Command::rcpt, {{"{rcpt_addr}", "b@example.net"}}),
      encode_rcpt({"<b@example.net>"}),
      encode_macros(Command::data, {{"i", "Q1"}}),
      encode_bare(Command::data),
      encode_header("Subject", "hello\n world"),
      encode_macros(Command::end_of_headers, {{"i", "Q1"}}),
      encode_bare(Command::end_of_headers),
      encode_macros(Command::end_of_body, {{"i", "Q1"}}),
      encode_bare(Command::end_of_body),
      encode_bare(Command::quit),
  };
  CHECK(fake.received() == expected);
}

TEST_CASE("milter chain: a unix socket milter, header_leading_space, a body split into chunks", "[milter_chain]") {
  FakeMilter fake(FakeMilter::Kind::unix_socket);
  fake.serve([](FakeSession& s) {
    s.negotiate(0, step::header_leading_space | step::no_connect | step::no_mail | step::no_rcpt | step::no_data);
    for (;;) {
      test::Packet p = s.command();
      if (p.command == 'Q') break;
      s.send('c');
    }
  });
  Harness h({fake.spec("unix")});
  CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  h.chain->submit(header_event("X-A", " b"));
  h.chain->submit(body_event(std::string(150'000, 'x')));
  CHECK(h.ask(eom_event()).kind == Verdict::Kind::proceed);
  CHECK(h.chain->backlog() == 0);
  h.chain.reset();
  fake.join();
  CHECK(fake.error() == "");
  const auto& got = fake.received();
  CHECK(commands(got) == std::vector<char>{'O', 'L', 'B', 'B', 'B', 'D', 'E', 'Q'});
  REQUIRE(got.size() == 8);
  CHECK(got[1] == encode_header("X-A", " b"));
  CHECK(got[2] == encode_body(std::string(65535, 'x')));
  CHECK(got[3] == encode_body(std::string(65535, 'x')));
  CHECK(got[4] == encode_body(std::string(150'000 - 2 * 65535, 'x')));
}

}  // namespace wsmtp::listener::milter
