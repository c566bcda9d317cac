// The milter chain when milters fail or are slow: progress, each timeout,
// milters that are not there, broken replies, each default action for the
// rest of the session, backpressure and drained, a stalled milter beside a
// healthy chain on one loop, a milter that stops reading. Timeouts are a few
// hundred milliseconds so the failures are quick.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "milter_chain_harness.h"

namespace wsmtp::listener::milter {

using namespace test;

TEST_CASE("milter chain: SMFIR_PROGRESS restarts the timeout", "[milter_chain]") {
  FakeMilter fake;
  fake.serve([](FakeSession& s) {
    s.negotiate(0, 0);
    for (;;) {
      test::Packet p = s.command();
      if (p.command == 'Q') return;
      if (p.command == 'E') {
        for (int i = 0; i < 6; ++i) {
          std::this_thread::sleep_for(100ms);
          s.send('p');
        }
      }
      s.send('c');
    }
  });
  MilterSpec spec = fake.spec("m1");
  spec.content_timeout = 400ms;
  Harness h({spec});
  CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(eom_event()).kind == Verdict::Kind::proceed);  // 600 ms, past the timeout
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
  std::atomic<bool> done{false};
  FakeMilter fake(FakeMilter::Kind::unix_socket);
  fake.serve([&done](FakeSession& s) {
    s.negotiate(0, step::no_reply_body);
    for (char c : {'C', 'M'}) {
      if (s.command().command != c) throw std::runtime_error("unexpected command");
      s.send('c');
    }
    // Reads nothing more, for longer than the test waits.
    for (int i = 0; i < 300 && !done; ++i) std::this_thread::sleep_for(10ms);
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
  CHECK(std::chrono::steady_clock::now() - start < 2500ms);  // the timeout, not the milter going away
  CHECK(h.chain->backlog() == 0);                            // the failed milter let go of the queue
  done = true;
  h.finish();
  fake.join();
}

}  // namespace wsmtp::listener::milter
