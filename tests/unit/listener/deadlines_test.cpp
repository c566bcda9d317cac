// Deadlines a trickling client cannot push back (issue 13): time is passed in,
// so each case is a timeline.
#include <catch2/catch.hpp>

#include "deadlines.h"

namespace wsmtp::listener {

using Kind = Deadlines::Kind;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {
const auto t0 = Deadlines::Clock::time_point{} + seconds(1000);
Deadlines::Limits limits() {
  return {
      .command_deadline = seconds(3), .data_base = seconds(10), .min_data_rate = 100, .max_session_time = seconds(60)};
}
}  // namespace

TEST_CASE("a command line has a deadline that bytes do not reset", "[deadlines]") {
  Deadlines d(limits(), t0);
  d.update(t0, false, false, false);
  CHECK(d.next() == t0 + seconds(3));
  // A byte a second: update() is called after each read, nothing moves.
  for (int i = 1; i < 3; ++i) {
    d.update(t0 + seconds(i), false, false, false);
    CHECK(d.expired(t0 + seconds(i)) == Kind::none);
  }
  CHECK(d.expired(t0 + seconds(3)) == Kind::command);
}

TEST_CASE("each complete command line starts the next line's deadline", "[deadlines]") {
  Deadlines d(limits(), t0);
  for (int i = 1; i <= 20; ++i) {
    d.command_done(t0 + seconds(2 * i));
    d.update(t0 + seconds(2 * i), false, false, false);
    CHECK(d.expired(t0 + seconds(2 * i) + milliseconds(1999)) == Kind::none);
  }
  CHECK(d.next() == t0 + seconds(43));
}

TEST_CASE("message data: a base allowance plus time earned by bytes", "[deadlines]") {
  Deadlines d(limits(), t0);
  d.command_done(t0 + seconds(1));  // DATA
  d.update(t0 + seconds(1), true, true, false);
  // No command deadline while data is read; 10 s base.
  CHECK(d.next() == t0 + seconds(11));
  CHECK(d.expired(t0 + seconds(8)) == Kind::none);
  d.data_received(500);  // 5 s at 100 bytes/s
  CHECK(d.next() == t0 + seconds(16));
  CHECK(d.expired(t0 + seconds(15)) == Kind::none);
  CHECK(d.expired(t0 + seconds(16)) == Kind::data);

  // A client at twice the minimum rate never reaches it.
  Deadlines fast(limits(), t0);
  fast.update(t0, true, true, false);
  for (int s = 1; s <= 100; ++s) {
    fast.data_received(200);
    CHECK(fast.expired(t0 + seconds(s)) == Kind::none);
  }
}

TEST_CASE("min_data_rate 0 turns the data deadline off", "[deadlines]") {
  auto l = limits();
  l.min_data_rate = 0;
  Deadlines d(l, t0);
  d.update(t0, true, true, false);
  CHECK(d.next() == Deadlines::Clock::time_point::max());
  CHECK(d.expired(t0 + seconds(100000)) == Kind::none);
}

TEST_CASE("time parked is not the client's", "[deadlines]") {
  Deadlines d(limits(), t0);
  d.update(t0, false, false, false);
  d.update(t0 + seconds(1), false, false, true);  // waiting for the store
  CHECK(d.next() == Deadlines::Clock::time_point::max());
  CHECK(d.expired(t0 + seconds(30)) == Kind::none);
  d.update(t0 + seconds(31), false, false, false);  // 30 s given back
  CHECK(d.expired(t0 + seconds(32)) == Kind::none);
  CHECK(d.expired(t0 + seconds(33)) == Kind::command);
}

TEST_CASE("the session lifetime ends a session between messages, not inside one", "[deadlines]") {
  auto l = limits();
  l.command_deadline = seconds(1000);
  l.data_base = seconds(100);
  Deadlines d(l, t0);
  d.update(t0, false, false, false);
  CHECK(d.next() == t0 + seconds(60));
  d.update(t0 + seconds(50), true, true, false);  // DATA began at 50 s
  d.data_received(10000);                         // worth 100 s
  CHECK(d.expired(t0 + seconds(70)) == Kind::none);
  CHECK(d.next() == t0 + seconds(250));
  d.update(t0 + seconds(90), false, false, false);  // the message is done
  CHECK(d.expired(t0 + seconds(90)) == Kind::session);

  // BDAT: between chunks the message's deadline still runs, and so does the
  // command line's.
  Deadlines b(l, t0);
  b.update(t0, true, true, false);
  b.update(t0 + seconds(1), true, false, false);
  CHECK(b.next() == t0 + seconds(100));
  CHECK(b.expired(t0 + seconds(100)) == Kind::data);

  l.max_session_time = seconds(0);  // off
  Deadlines off(l, t0);
  off.update(t0, false, false, false);
  CHECK(off.next() == t0 + seconds(1000));
}

TEST_CASE("bytes that arrive with the DATA line count; a new message starts from zero", "[deadlines]") {
  Deadlines d(limits(), t0);
  d.update(t0, false, false, false);
  d.data_received(1000);  // fed in the same round as DATA, before the loop looks again
  d.update(t0, true, true, false);
  CHECK(d.next() == t0 + seconds(20));
  d.update(t0 + seconds(1), false, false, false);  // accepted
  d.update(t0 + seconds(2), true, true, false);    // the next message
  CHECK(d.next() == t0 + seconds(12));
}

TEST_CASE("after the data the wait for a command starts afresh", "[deadlines]") {
  Deadlines d(limits(), t0);
  d.update(t0, true, true, false);
  d.data_received(100000);
  d.update(t0 + seconds(20), false, false, false);
  CHECK(d.next() == t0 + seconds(23));
}

}  // namespace wsmtp::listener
