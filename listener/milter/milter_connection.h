// One milter's socket on the session's event loop: the non-blocking connect
// (inet or unix), the option negotiation, packets out, reply packets in, and
// the timers around them. Knows the framing and the handshake, not what the
// stages mean: Chain decides what to send and what a reply does.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "handles.h"
#include "milter/milter_spec.h"
#include "milter/protocol.h"

namespace wsmtp::listener::milter {

class MilterConnection {
 public:
  struct Handlers {
    // The negotiation succeeded: negotiation() is valid, send() may be used.
    std::function<void()> negotiated;
    // One reply packet after the negotiation (SMFIR_PROGRESS is handled here:
    // it restarts the reply timer and is not passed on).
    std::function<void(Reply)> reply;
    // The connection is closed for `why` (refused, timed out, closed by the
    // milter, garbage). Runs once, from the event loop, never inside a call
    // to this class; nothing runs after it.
    std::function<void(const std::string& why)> failed;
    // Everything send() queued has been written to the socket.
    std::function<void()> drained;
  };

  // spec outlives this object. Nothing happens until open().
  MilterConnection(event_base* base, const MilterSpec& spec, Handlers handlers);
  // Best effort: the packets still queued and SMFIC_QUIT in one non-blocking
  // send, then the socket closes (libevent closes the fd at its next loop
  // iteration). No handler runs after this.
  ~MilterConnection();
  MilterConnection(const MilterConnection&) = delete;
  MilterConnection& operator=(const MilterConnection&) = delete;

  // Starts the connect and then the negotiation (version 6, every action and
  // step we offer), both within spec.connect_timeout. Throws std::runtime_error
  // only if libevent cannot allocate; a refused connect arrives as failed().
  void open();
  // Queues complete packets; `timeout` bounds how long the milter may leave
  // them unread (a milter that stops reading fails with "write timed out").
  void send(std::string_view packets, std::chrono::milliseconds timeout);
  // (Re)arms the reply timer: without a reply (or SMFIR_PROGRESS) within
  // `timeout`, failed("no reply within ...") runs.
  void await_reply(std::chrono::milliseconds timeout);
  // Closes the socket without SMFIC_QUIT and without calling any handler
  // (the owner found the milter broken itself).
  void close() noexcept;

  bool is_open() const { return static_cast<bool>(bev_); }
  std::size_t unsent() const;
  const Negotiation& negotiation() const { return negotiation_; }

 private:
  static void event_cb(bufferevent* bev, short events, void* self) noexcept;
  static void read_cb(bufferevent* bev, void* self) noexcept;
  static void write_cb(bufferevent* bev, void* self) noexcept;
  static void timer_cb(evutil_socket_t, short, void* self) noexcept;

  void connected();
  void read_packets();
  void check_negotiation(const Reply& reply);
  void fail(std::string why) noexcept;
  void arm_timer(std::chrono::milliseconds timeout);

  event_base* base_;
  const MilterSpec& spec_;
  Handlers handlers_;
  common::BufferEventPtr bev_;
  common::EventPtr timer_;
  PacketReader reader_;
  Negotiation negotiation_;
  bool negotiated_ = false;
  // Set when the failure is found outside a libevent callback (a connect
  // refused at once): the timer reports it, so failed() never runs inside open().
  std::string deferred_failure_;
  std::chrono::milliseconds reply_timeout_{0};
};

}  // namespace wsmtp::listener::milter
