// The milter chain against scripted milters on loopback (fake_milter.h) when
// they work: the exact packets each stage sends after negotiation, every
// verdict at every awaited stage, accept, abort, skip, the order of several
// milters, the changes at end of message and a refusal at a header.
// Failures, timeouts and backpressure: milter_chain_failure_test.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "milter_chain_harness.h"

namespace wsmtp::listener::milter {

using namespace test;

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

// The session gives a later milter the content again once the earlier ones
// are done (Postfix's order): events for one milter are passed by the others.
TEST_CASE("milter chain: an event for one milter is passed by the others", "[milter_chain]") {
  FakeMilter a, b;
  a.serve(reply_at('R', test::packet('c')));
  b.serve(reply_at('R', test::packet('c')));
  Harness h({a.spec("A"), b.spec("B")});
  CHECK(h.ask(connect_event()).kind == Verdict::Kind::proceed);
  CHECK(h.ask(mail_event()).kind == Verdict::Kind::proceed);
  auto only = [](Event e, int milter) {
    e.milter = milter;
    return e;
  };
  h.chain->submit(only(header_event("Subject", " first"), 0));
  h.chain->submit(only(make(Stage::end_of_headers, false), 0));
  h.chain->submit(only(body_event("one\r\n"), 0));
  CHECK(h.ask(only(eom_event(), 0)).kind == Verdict::Kind::proceed);
  h.chain->submit(only(header_event("X-Added", " by A"), 1));
  h.chain->submit(only(make(Stage::end_of_headers, false), 1));
  h.chain->submit(only(body_event("one\r\n"), 1));
  CHECK(h.ask(only(eom_event(), 1)).kind == Verdict::Kind::proceed);
  h.finish();
  a.join();
  b.join();
  CHECK(a.error() == "");
  CHECK(b.error() == "");
  CHECK(commands_without_macros(a.received()) == "OCMLNBEQ");
  CHECK(commands_without_macros(b.received()) == "OCMLNBEQ");
  auto all = [](const FakeMilter& m) {
    std::string out;
    for (const auto& packet : m.received()) out += packet;
    return out;
  };
  CHECK(all(a).find(std::string("Subject\0first", 13)) != std::string::npos);
  CHECK(all(a).find("X-Added") == std::string::npos);
  CHECK(all(b).find("X-Added") != std::string::npos);
  CHECK(all(b).find("Subject") == std::string::npos);
}

}  // namespace wsmtp::listener::milter
