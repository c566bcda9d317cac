// The milter chain against scripted milters on loopback (fake_milter.h): the
// exact packets each stage sends after negotiation, every verdict, the order
// of several milters, the changes at end of message, every failure and its
// default action, backpressure, and one stalled milter not holding another
// chain. Timeouts are a few hundred milliseconds so the failures are quick.
#include <catch2/catch.hpp>

#include <event2/event.h>

#include <atomic>
#include <csignal>
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

// The commands a milter received, without its SMFIC_MACRO packets.
std::string commands_without_macros(const std::vector<std::string>& packets) {
  std::string out;
  for (const auto& p : packets) {
    if (p.at(4) != 'D') out += p.at(4);
  }
  return out;
}

// A milter that negotiates `actions` and `steps`, answers `target` with the
// packet `reply` and every other command that wants an answer with
// SMFIR_CONTINUE, until SMFIC_QUIT.
std::function<void(FakeSession&)> reply_at(char target, std::string reply, std::uint32_t actions = 0,
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
std::uint16_t closed_port() {
  FakeMilter probe;
  return probe.spec("x").port;
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
  h.finish();
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
  h.finish();
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

TEST_CASE("milter chain: each reply at each awaited stage becomes its verdict", "[milter_chain]") {
  struct Case {
    char reply;
    std::string payload;
    Verdict::Kind kind;
    int code;  // of the milter's own reply, 0 = none
  };
  const char stage = GENERATE('C', 'H', 'M', 'R', 'T', 'E');
  const Case c = GENERATE(values<Case>({
      {'c', "", Verdict::Kind::proceed, 0},
      {'a', "", Verdict::Kind::proceed, 0},
      {'r', "", Verdict::Kind::reject, 0},
      {'t', "", Verdict::Kind::tempfail, 0},
      {'d', "", Verdict::Kind::discard, 0},
      {'y', std::string("554 5.7.1 not you\0", 18), Verdict::Kind::reject, 554},
      {'y', std::string("452 4.7.1 later\0", 16), Verdict::Kind::tempfail, 452},
      {'4', "", Verdict::Kind::shutdown, 0},
      {'f', "", Verdict::Kind::shutdown, 0},
  }));
  CAPTURE(stage, c.reply);
  FakeMilter fake;
  fake.serve(reply_at(stage, test::packet(c.reply, c.payload)));
  Harness h({fake.spec("m1")});
  const std::vector<Event> events = {connect_event(), helo_event(), mail_event(),
                                     rcpt_event(),    data_event(), eom_event()};
  const std::string order = "CHMRTE";
  for (std::size_t k = 0; k < events.size(); ++k) {
    Verdict v = h.ask(events[k]);
    if (order[k] != stage) {
      REQUIRE(v.kind == Verdict::Kind::proceed);
      continue;
    }
    CHECK(v.kind == c.kind);
    CHECK(v.reply.has_value() == (c.code != 0));
    if (c.code) CHECK(v.reply->code == c.code);
    CHECK(v.milter == (c.kind == Verdict::Kind::proceed ? "" : "m1"));
    break;
  }
  h.finish();
  fake.join();
  CHECK(fake.error() == "");
}

TEST_CASE("milter chain: SMFIR_ACCEPT leaves the milter out for the message or the session", "[milter_chain]") {
  SECTION("at MAIL: the rest of the message, then the next message again") {
    FakeMilter fake;
    fake.serve([](FakeSession& s) {
      s.negotiate(0, 0);
      int mails = 0;
      for (;;) {
        test::Packet p = s.command();
        if (p.command == 'Q') return;
        if (p.command == 'A') continue;
        s.send(p.command == 'M' && mails++ == 0 ? 'a' : 'c');
      }
    });
    Harness h({fake.spec("m1")});
    for (Event e : {connect_event(), mail_event(), rcpt_event(), data_event()}) {
      CHECK(h.ask(e).kind == Verdict::Kind::proceed);
    }
    h.chain->submit(header_event("Subject", " x"));
    CHECK(h.ask(eom_event()).kind == Verdict::Kind::proceed);
    h.chain->submit(make(Stage::abort, false));
    CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
    CHECK(h.ask(rcpt_event()).kind == Verdict::Kind::proceed);
    h.finish();
    fake.join();
    CHECK(fake.error() == "");
    CHECK(commands_without_macros(fake.received()) == "OCMMRQ");
  }
  SECTION("at connect: the whole session") {
    FakeMilter fake;
    fake.serve(reply_at('C', test::packet('a')));
    Harness h({fake.spec("m1")});
    for (Event e : {connect_event(), helo_event(), mail_event(), rcpt_event(), data_event(), eom_event()}) {
      CHECK(h.ask(e).kind == Verdict::Kind::proceed);
    }
    h.finish();
    fake.join();
    CHECK(commands_without_macros(fake.received()) == "OCQ");
  }
}

TEST_CASE("milter chain: abort goes only to a milter inside a message", "[milter_chain]") {
  FakeMilter fake;
  fake.serve(reply_at('X', ""));
  Harness h({fake.spec("m1")});
  CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
  h.chain->submit(make(Stage::abort, false));
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(rcpt_event()).kind == Verdict::Kind::proceed);
  h.chain->submit(make(Stage::abort, false));
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  // A new MAIL without abort first ends the open message for the milter.
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  h.finish();
  fake.join();
  CHECK(fake.error() == "");
  CHECK(commands_without_macros(fake.received()) == "OCMRAMAMQ");
}

TEST_CASE("milter chain: SMFIR_SKIP stops the body, only when negotiated", "[milter_chain]") {
  SECTION("negotiated") {
    FakeMilter fake;
    fake.serve(reply_at('B', test::packet('s'), 0, step::skip));
    Harness h({fake.spec("m1")});
    CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
    CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
    for (int i = 0; i < 3; ++i) h.chain->submit(body_event("line\r\n"));
    CHECK(h.ask(eom_event()).kind == Verdict::Kind::proceed);
    h.finish();
    fake.join();
    CHECK(fake.error() == "");
    CHECK(commands_without_macros(fake.received()) == "OCMBEQ");
  }
  SECTION("not negotiated: a protocol error, the default action at end of message") {
    FakeMilter fake;
    fake.serve(reply_at('B', test::packet('s')));
    Harness h({fake.spec("m1")});
    CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
    CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
    h.chain->submit(body_event("line\r\n"));
    Verdict v = h.ask(eom_event());
    CHECK(v.kind == Verdict::Kind::tempfail);
    REQUIRE(v.reply);
    CHECK(v.reply->wire() == "451 4.7.1 Service unavailable - try again later\r\n");
  }
}

TEST_CASE("milter chain: milters in order, the first that decides ends the event", "[milter_chain]") {
  FakeMilter a, b;
  a.serve(reply_at('T', test::packet('y', std::string("550 5.7.1 a says no\0", 20))));
  b.serve(reply_at('R', test::packet('r')));
  Harness h({a.spec("A"), b.spec("B")});
  CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  Verdict rcpt = h.ask(rcpt_event());
  CHECK(rcpt.kind == Verdict::Kind::reject);
  CHECK(rcpt.milter == "B");
  Verdict data = h.ask(data_event());
  CHECK(data.kind == Verdict::Kind::reject);
  CHECK(data.milter == "A");
  REQUIRE(data.reply);
  CHECK(data.reply->text == "a says no");
  h.chain->submit(make(Stage::abort, false));
  CHECK(h.ask(helo_event()).kind == Verdict::Kind::proceed);
  h.finish();
  a.join();
  b.join();
  CHECK(a.error() == "");
  CHECK(b.error() == "");
  CHECK(commands_without_macros(a.received()) == "OCMRTAHQ");
  CHECK(commands_without_macros(b.received()) == "OCMRAHQ");  // never asked about DATA
}

TEST_CASE("milter chain: end-of-message changes in milter order, with who made them", "[milter_chain]") {
  FakeMilter a, b;
  a.serve([](FakeSession& s) {
    s.negotiate(action::add_headers | action::change_from, 0);
    for (;;) {
      test::Packet p = s.command();
      if (p.command == 'Q') return;
      if (p.command == 'E') {
        s.send('h', std::string("X-A\0one\0", 8));
        s.send('e', std::string("<new@example.org>\0", 18));
      }
      s.send('c');
    }
  });
  b.serve([](FakeSession& s) {
    s.negotiate(action::add_rcpt | action::quarantine, 0);
    for (;;) {
      test::Packet p = s.command();
      if (p.command == 'Q') return;
      if (p.command == 'E') {
        s.send('+', std::string("<c@example.net>\0", 16));
        s.send('q', std::string("looks odd\0", 10));
        s.send('a');
      } else {
        s.send('c');
      }
    }
  });
  Harness h({a.spec("A"), b.spec("B")});
  for (Event e : {connect_event(), mail_event(), rcpt_event(), data_event()}) {
    CHECK(h.ask(e).kind == Verdict::Kind::proceed);
  }
  h.chain->submit(header_event("Subject", " x"));
  h.chain->submit(eoh_event());
  h.chain->submit(body_event("hi\r\n"));
  Verdict v = h.ask(eom_event());
  CHECK(v.kind == Verdict::Kind::proceed);
  REQUIRE(v.changes.size() == 4);
  CHECK(v.changes[0].kind == Reply::Kind::add_header);
  CHECK(v.changes[0].name == "X-A");
  CHECK(v.changes[0].value == "one");
  CHECK(v.changes[1].kind == Reply::Kind::change_from);
  CHECK(v.changes[1].address == "<new@example.org>");
  CHECK(v.changes[2].kind == Reply::Kind::add_rcpt);
  CHECK(v.changes[3].kind == Reply::Kind::quarantine);
  CHECK(v.changes[3].reason == "looks odd");
  CHECK(v.changed_by == std::vector<std::string>{"A", "A", "B", "B"});
  h.finish();
  a.join();
  b.join();
  CHECK(a.error() == "");
  CHECK(b.error() == "");
}

TEST_CASE("milter chain: a refusal at a header becomes the end-of-message verdict", "[milter_chain]") {
  FakeMilter a, b;
  a.serve(reply_at('L', test::packet('t')));
  b.serve(reply_at('X', ""));
  Harness h({a.spec("A"), b.spec("B")});
  for (Event e : {connect_event(), mail_event(), rcpt_event(), data_event()}) {
    CHECK(h.ask(e).kind == Verdict::Kind::proceed);
  }
  h.chain->submit(header_event("Subject", " x"));
  h.chain->submit(header_event("From", " y"));
  h.chain->submit(eoh_event());
  h.chain->submit(body_event("hi\r\n"));
  Verdict v = h.ask(eom_event());
  CHECK(v.kind == Verdict::Kind::tempfail);
  CHECK(v.milter == "A");
  CHECK_FALSE(v.reply);
  CHECK(h.ask(helo_event()).kind == Verdict::Kind::proceed);
  h.finish();
  a.join();
  b.join();
  // A gets nothing after its refusal but the abort; B is not asked at the end.
  CHECK(commands_without_macros(a.received()) == "OCMRTLAHQ");
  CHECK(commands_without_macros(b.received()) == "OCMRTLLNBAHQ");
}

TEST_CASE("milter chain: SMFIR_PROGRESS restarts the timeout", "[milter_chain]") {
  FakeMilter fake;
  fake.serve([](FakeSession& s) {
    s.negotiate(0, 0);
    for (;;) {
      test::Packet p = s.command();
      if (p.command == 'Q') return;
      if (p.command == 'E') {
        for (int i = 0; i < 4; ++i) {
          std::this_thread::sleep_for(150ms);
          s.send('p');
        }
      }
      s.send('c');
    }
  });
  MilterSpec spec = fake.spec("m1");
  spec.content_timeout = 300ms;
  Harness h({spec});
  CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(eom_event()).kind == Verdict::Kind::proceed);  // 600 ms, twice the timeout
  h.finish();
  fake.join();
  CHECK(fake.error() == "");
}

TEST_CASE("milter chain: each timeout gives the default action", "[milter_chain]") {
  using Clock = std::chrono::steady_clock;
  FakeMilter fake;
  MilterSpec spec = fake.spec("slow");
  std::vector<Event> events = {connect_event(), mail_event(), eom_event()};
  std::size_t failing = 0;
  SECTION("connect: accepted by the kernel, never negotiated") {
    spec.connect_timeout = 200ms;
    failing = 0;
  }
  SECTION("command: no reply to MAIL") {
    spec.command_timeout = 200ms;
    fake.serve(reply_at('M', ""));
    failing = 1;
  }
  SECTION("content: no reply to end of message") {
    spec.content_timeout = 200ms;
    fake.serve(reply_at('E', ""));
    failing = 2;
  }
  Harness h({spec});
  for (std::size_t k = 0; k < failing; ++k) CHECK(h.ask(events[k]).kind == Verdict::Kind::proceed);
  const auto start = Clock::now();
  Verdict v = h.ask(events[failing]);
  const auto waited = Clock::now() - start;
  CHECK(v.kind == Verdict::Kind::tempfail);
  CHECK(v.milter == "slow");
  CHECK(waited >= 150ms);
  CHECK(waited < 2s);
  h.finish();
}

TEST_CASE("milter chain: a milter that is not there", "[milter_chain]") {
  MilterSpec spec;
  SECTION("inet, connection refused") {
    spec.name = "inet";
    spec.host = "127.0.0.1";
    spec.port = closed_port();
  }
  SECTION("unix socket that does not exist") {
    spec.name = "unix";
    spec.transport = MilterSpec::Transport::unix_socket;
    spec.path = "/nonexistent/milter.sock";
  }
  SECTION("IPv6 loopback, connection refused") {
    spec.name = "inet6";
    spec.host = "::1";
    spec.port = closed_port();
  }
  Harness h({spec});
  h.chain->submit(connect_event());
  CHECK(h.verdicts.empty());  // never from inside submit()
  REQUIRE(h.run_until([&] { return !h.verdicts.empty(); }));
  CHECK(h.verdicts[0].kind == Verdict::Kind::tempfail);
  CHECK(h.verdicts[0].reply->wire() == "451 4.7.1 Service unavailable - try again later\r\n");
}

TEST_CASE("milter chain: a broken milter gets its default action", "[milter_chain]") {
  FakeMilter fake;
  std::vector<Event> events = {connect_event(), mail_event(), eom_event()};
  std::size_t failing = 0;
  SECTION("garbage instead of a reply") { fake.serve(reply_at('C', test::packet('Z', "what"))); }
  SECTION("a zero-length packet") { fake.serve(reply_at('C', std::string(4, '\0'))); }
  SECTION("a reply nobody asked for") {
    fake.serve([](FakeSession& s) {
      s.negotiate(0, 0);
      s.command();
      s.send_raw(test::packet('c') + test::packet('c'));  // one segment: both arrive together
      s.drain();
    });
    failing = 1;
  }
  SECTION("a modification it did not negotiate") {
    fake.serve(reply_at('E', test::packet('h', std::string("X-A\0b\0", 6))));
    failing = 2;
  }
  SECTION("a modification before end of message") {
    fake.serve(reply_at('M', test::packet('h', std::string("X-A\0b\0", 6)), action::add_headers));
    failing = 1;
  }
  SECTION("the connection closed in the middle of the body") {
    fake.serve([](FakeSession& s) {
      s.negotiate(0, 0);
      for (char c : {'C', 'M'}) {
        if (s.command().command != c) throw std::runtime_error("unexpected command");
        s.send('c');
      }
      s.command();  // the first body chunk; then the milter goes away
    });
    events = {connect_event(), mail_event(), body_event(std::string(200'000, 'b')), eom_event()};
    failing = 3;
  }
  Harness h({fake.spec("broken")});
  for (std::size_t k = 0; k < events.size(); ++k) {
    if (!events[k].awaited) {
      h.chain->submit(events[k]);
      continue;
    }
    Verdict v = h.ask(events[k]);
    CHECK(v.kind == (k < failing ? Verdict::Kind::proceed : Verdict::Kind::tempfail));
    if (k >= failing) CHECK(v.milter == "broken");
  }
  CHECK(h.ask(helo_event()).kind == Verdict::Kind::tempfail);  // and for the rest of the session
  h.finish();
  fake.join();
}

TEST_CASE("milter chain: default actions hold for the rest of the session", "[milter_chain]") {
  const DefaultAction action =
      GENERATE(DefaultAction::tempfail, DefaultAction::reject, DefaultAction::accept, DefaultAction::quarantine);
  CAPTURE(static_cast<int>(action));
  MilterSpec gone;
  gone.name = "gone";
  gone.host = "127.0.0.1";
  gone.port = closed_port();
  gone.default_action = action;
  FakeMilter second;
  second.serve([](FakeSession& s) {
    s.negotiate(action::add_headers, 0);
    for (;;) {
      test::Packet p = s.command();
      if (p.command == 'Q') return;
      if (p.command == 'A') continue;
      if (p.command == 'E') s.send('h', std::string("X-B\0b\0", 6));
      s.send('c');
    }
  });
  Harness h({gone, second.spec("second")});
  const bool refuses = action == DefaultAction::tempfail || action == DefaultAction::reject;
  const auto expected = action == DefaultAction::tempfail ? Verdict::Kind::tempfail
                        : action == DefaultAction::reject ? Verdict::Kind::reject
                                                          : Verdict::Kind::proceed;
  for (Event e : {connect_event(), helo_event(), mail_event(), rcpt_event(), data_event(), eom_event()}) {
    const Stage stage = e.stage;
    const std::size_t before = h.verdicts.size();
    h.chain->submit(e);
    CHECK(h.verdicts.size() == before);  // never from inside submit()
    REQUIRE(h.run_until([&] { return h.verdicts.size() > before; }));
    const Verdict& v = h.verdicts.back();
    CHECK(v.kind == expected);
    if (refuses) {
      CHECK(v.milter == "gone");
      REQUIRE(v.reply);
      CHECK(v.reply->code == (action == DefaultAction::tempfail ? 451 : 550));
    }
    if (stage == Stage::end_of_message && !refuses) {
      if (action == DefaultAction::quarantine) {
        REQUIRE(v.changes.size() == 2);
        CHECK(v.changes[0].kind == Reply::Kind::quarantine);
        CHECK(v.changes[0].reason == "milter unavailable");
        CHECK(v.changed_by == std::vector<std::string>{"gone", "second"});
      } else {
        REQUIRE(v.changes.size() == 1);
        CHECK(v.changed_by == std::vector<std::string>{"second"});
      }
    }
  }
  h.finish();
  second.join();
  if (refuses) {
    // Never asked; the chain may go before it even read the negotiation
    // reply (then no QUIT: the fake sees EOF).
    CHECK(commands_without_macros(second.received()).find_first_of("CHMRTE") == std::string::npos);
  } else {
    CHECK(second.error() == "");
    CHECK(commands_without_macros(second.received()) == "OCHMRTEQ");
  }
}

TEST_CASE("milter chain: backpressure while a milter does not read, drained when it does", "[milter_chain]") {
  std::atomic<bool> release{false};
  FakeMilter fake;
  fake.serve([&release](FakeSession& s) {
    s.negotiate(0, 0);
    for (char c : {'C', 'M'}) {
      if (s.command().command != c) throw std::runtime_error("unexpected command");
      s.send('c');
    }
    while (!release) std::this_thread::sleep_for(5ms);
    for (;;) {
      test::Packet p = s.command();
      if (p.command == 'Q') return;
      s.send('c');
    }
  });
  Harness h({fake.spec("m1")});
  CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  for (int i = 0; i < 6; ++i) h.chain->submit(body_event(std::string(64 * 1024, 'b')));
  CHECK(h.chain->backlog() > Chain::kBackpressure);
  h.run_until([] { return false; }, 200ms);
  CHECK(h.chain->backlog() > Chain::kBackpressure);
  CHECK(h.drained == 0);
  release = true;
  REQUIRE(h.run_until([&] { return h.drained == 1; }));
  CHECK(h.chain->backlog() <= Chain::kBackpressure);
  CHECK(h.ask(eom_event()).kind == Verdict::Kind::proceed);
  CHECK(h.chain->backlog() == 0);
  h.finish();
  fake.join();
  CHECK(fake.error() == "");
}

TEST_CASE("milter chain: a stalled milter holds only its own chain", "[milter_chain]") {
  FakeMilter stalled, healthy;
  stalled.serve([](FakeSession& s) {
    s.negotiate(0, 0);
    s.command();  // connect, never answered
    s.drain();
  });
  healthy.serve(reply_at('X', ""));
  Harness one({stalled.spec("stalled")});
  Harness two({healthy.spec("healthy")}, one.base);
  one.chain->submit(connect_event());
  for (Event e : {connect_event(), helo_event(), mail_event(), rcpt_event(), data_event(), eom_event()}) {
    CHECK(two.ask(e).kind == Verdict::Kind::proceed);
  }
  CHECK(one.verdicts.empty());
  two.finish();
  one.finish();
  stalled.join();
  healthy.join();
  CHECK(healthy.error() == "");
}

TEST_CASE("milter chain: a milter that stops reading fails after the timeout", "[milter_chain]") {
  // Unanswered body chunks (SMFIP_NR_BODY) are written without waiting; over a
  // unix socket (a small kernel buffer) the writes then stall.
  FakeMilter fake(FakeMilter::Kind::unix_socket);
  fake.serve([](FakeSession& s) {
    s.negotiate(0, step::no_reply_body);
    for (char c : {'C', 'M'}) {
      if (s.command().command != c) throw std::runtime_error("unexpected command");
      s.send('c');
    }
    std::this_thread::sleep_for(1500ms);  // reads nothing more
  });
  MilterSpec spec = fake.spec("deaf");
  spec.content_timeout = 300ms;
  Harness h({spec});
  CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  for (int i = 0; i < 32; ++i) h.chain->submit(body_event(std::string(64 * 1024, 'b')));
  const auto start = std::chrono::steady_clock::now();
  Verdict v = h.ask(eom_event());
  CHECK(v.kind == Verdict::Kind::tempfail);
  CHECK(std::chrono::steady_clock::now() - start < 1500ms);
  CHECK(h.chain->backlog() == 0);  // the failed milter let go of the queue
  h.finish();
  fake.join();
}

}  // namespace wsmtp::listener::milter
