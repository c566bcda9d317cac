// The milters of one SMTP connection, on the connection's event loop: one
// non-blocking socket per milter (connected at the first event, negotiated,
// then kept for the whole session), Events passed to each milter in
// configured order, replies read as they come. Never blocks the loop: every
// connect, write and read is an event with its timeout (MilterSpec). A milter
// that fails (unreachable, timed out, garbage, closed) gets its
// DefaultAction for the rest of the session, and only this connection waits
// on it.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "milter/event.h"
#include "milter/milter_spec.h"

struct event_base;

namespace wsmtp::listener::milter {

class Chain {
 public:
  struct Callbacks {
    // One Verdict per awaited Event, in submission order, always from the
    // event loop and never from inside submit().
    std::function<void(Verdict)> verdict;
    // backlog() fell to or below kBackpressure after being above it.
    std::function<void()> drained;
  };
  // Above this many bytes submitted and not yet written to (and, where the
  // milter replies, answered by) every milter, the loop reads no more client input.
  static constexpr std::size_t kBackpressure = 256 * 1024;

  // log_tag names the session in log lines ("client=1.2.3.4"). milters is not
  // empty and outlives nothing: the chain co-owns it.
  Chain(event_base* base, std::shared_ptr<const MilterSpecs> milters, std::string log_tag, Callbacks callbacks);
  // Sends SMFIC_QUIT to the milters still connected (best effort, never
  // waits) and closes every socket; no callback runs after this.
  ~Chain();
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;

  // Queues an event. Per milter, in order:
  //  - a stage the milter turned off (SMFIP_NO*) is not sent, and counts as continue;
  //  - a message stage after the milter accepted the message, or any stage
  //    after it accepted the connection, is not sent;
  //  - body chunks after its SMFIR_SKIP are not sent;
  //  - a stage it will not answer (SMFIP_NR_*) counts as continue once written;
  //  - its reject/tempfail/discard/reply_code at header, end_of_headers or
  //    body is remembered and becomes the end_of_message verdict (the later
  //    milters are then not asked at end_of_message);
  //  - at an awaited stage the milters are asked one after the other; the
  //    first that does not continue (or accept) decides, the later ones are
  //    not asked for that event.
  // end_of_message collects each milter's changes until its final verdict.
  // abort resets every milter's message state (SMFIC_ABORT).
  void submit(Event event);
  std::size_t backlog() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsmtp::listener::milter
