// The per-connection deadlines (deadlines.h) on the event loop: one timer per
// connection, checked whenever the connection is touched. Kept apart from
// loop.cpp's byte moving; knows nothing of SMTP beyond the session's phase.
#include <event2/event.h>

#include <algorithm>
#include <stdexcept>

#include "log.h"
#include "loop.h"

namespace wsmtp::listener {

void Loop::deadline_cb(evutil_socket_t, short, void* conn) noexcept {
  auto& c = *static_cast<Connection*>(conn);
  try {
    c.deadline_armed = Deadlines::Clock::time_point::max();
    c.loop->after_activity(c);  // acts if a deadline passed, else arms the next one
  } catch (const std::exception& e) {
    c.loop->fail_connection(c, "deadline", e);
  }
}

// Tells the connection's deadlines what the session is doing now. A session
// waiting for the store or held back by the tarpit is parked; one whose client
// does not read our replies is not (that time is the client's).
Deadlines::Clock::time_point Loop::update_deadlines(Connection& c) {
  auto now = Deadlines::Clock::now();
  bool reading_data = c.session.in_data();
  c.deadlines.update(now, c.session.message_in_progress() || reading_data, reading_data,
                     c.session.waiting() || c.tarpitted || c.paused_for_milters);
  return now;
}

// The deadlines are checked whenever the connection is touched and by one
// timer per connection (deadline_cb), never by waiting.
void Loop::check_deadlines(Connection& c) {
  if (!c.bev || c.session.closing()) return;
  auto now = update_deadlines(c);
  auto kind = c.deadlines.expired(now);
  if (kind == Deadlines::Kind::none) return;
  if (c.session.wants_tls()) {
    // Mid-handshake a plaintext 421 cannot be sent: just hang up.
    log::info("client={} TLS handshake not complete within {}s, disconnecting", c.client_ip,
              settings_.config->command_deadline.count());
    c.session.on_disconnect();
    return close_socket(c);
  }
  c.session.on_deadline(kind);
}

// One timer per connection at its next deadline. Deadlines only move later
// while the session runs (bytes arrive, lines complete), so the timer is set
// again only for an earlier one; when it fires early, after_activity re-arms it.
void Loop::arm_deadline(Connection& c) {
  if (c.session.closing()) return;
  auto now = update_deadlines(c);
  auto next = c.deadlines.next();
  if (next >= c.deadline_armed) return;
  if (!c.deadline_timer) c.deadline_timer.reset(evtimer_new(base_.get(), &Loop::deadline_cb, &c));
  if (!c.deadline_timer) throw std::runtime_error("evtimer_new failed for a session deadline");
  auto wait =
      std::chrono::duration_cast<std::chrono::microseconds>(std::max(next - now, Deadlines::Clock::duration(0)));
  timeval tv{static_cast<time_t>(wait.count() / 1000000), static_cast<suseconds_t>(wait.count() % 1000000)};
  if (evtimer_add(c.deadline_timer.get(), &tv) != 0) throw std::runtime_error("evtimer_add failed for a deadline");
  c.deadline_armed = next;
}

}  // namespace wsmtp::listener
