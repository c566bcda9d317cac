// One milter socket: connect, negotiate, packets out, replies in, timers.
// Every libevent callback is a noexcept trampoline (STYLE §4): a throw inside
// becomes this milter's failure, never an unwinding through libevent.
#include "milter/milter_connection.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "log.h"

namespace wsmtp::listener::milter {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

// The milter's address as a sockaddr. Only numeric addresses: a DNS lookup
// would block the loop (config.cpp refuses names).
socklen_t milter_address(const MilterSpec& spec, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof(out));
  if (spec.transport == MilterSpec::Transport::unix_socket) {
    auto& un = reinterpret_cast<sockaddr_un&>(out);
    if (spec.path.empty() || spec.path.size() >= sizeof(un.sun_path)) {
      throw std::invalid_argument("unix socket path is empty or too long");
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, spec.path.data(), spec.path.size());
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + spec.path.size() + 1);
  }
  std::string host = spec.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.find(':') != std::string::npos) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(out);
    if (inet_pton(AF_INET6, host.c_str(), &in6.sin6_addr) != 1) throw std::invalid_argument("not an IPv6 address");
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(spec.port);
    return sizeof(sockaddr_in6);
  }
  auto& in4 = reinterpret_cast<sockaddr_in&>(out);
  if (inet_pton(AF_INET, host.c_str(), &in4.sin_addr) != 1) throw std::invalid_argument("not an IPv4 address");
  in4.sin_family = AF_INET;
  in4.sin_port = htons(spec.port);
  return sizeof(sockaddr_in);
}

}  // namespace

MilterConnection::MilterConnection(event_base* base, const MilterSpec& spec, Handlers handlers)
    : base_(base), spec_(spec), handlers_(std::move(handlers)) {
  timer_.reset(evtimer_new(base_, &MilterConnection::timer_cb, this));
  if (!timer_) throw std::runtime_error("evtimer_new failed for a milter timer");
}

MilterConnection::~MilterConnection() {
  if (bev_ && negotiated_) {
    // What is still queued, then SMFIC_QUIT, in one non-blocking send: the
    // queue always ends at a packet boundary, and a milter that does not take
    // it all sees a cut packet and then EOF, which libmilter also handles.
    evbuffer* output = bufferevent_get_output(bev_.get());
    const std::string quit = encode_bare(Command::quit);
    evbuffer_add(output, quit.data(), quit.size());
    const std::size_t length = evbuffer_get_length(output);
    const unsigned char* bytes = evbuffer_pullup(output, static_cast<ev_ssize_t>(length));
    if (bytes) (void)::send(bufferevent_getfd(bev_.get()), bytes, length, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  close();
}

void MilterConnection::open() {
  arm_timer(spec_.connect_timeout);
  sockaddr_storage address;
  socklen_t length = 0;
  try {
    length = milter_address(spec_, address);
  } catch (const std::invalid_argument& e) {
    deferred_failure_ = fmt::format("bad address: {}", e.what());
    arm_timer(std::chrono::milliseconds(0));
    return;
  }
  bev_.reset(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE));
  if (!bev_) throw std::runtime_error("bufferevent_socket_new failed for a milter");
  bufferevent_setcb(bev_.get(), &MilterConnection::read_cb, &MilterConnection::write_cb, &MilterConnection::event_cb,
                    this);
  if (bufferevent_socket_connect(bev_.get(), reinterpret_cast<sockaddr*>(&address), static_cast<int>(length)) != 0) {
    // Refused at once (a unix socket path that does not exist): reported from
    // the timer so the owner's handler never runs inside open().
    deferred_failure_ = fmt::format("connect: {}", std::strerror(errno));
    bev_.reset();
    arm_timer(std::chrono::milliseconds(0));
  }
}

void MilterConnection::send(std::string_view packets, std::chrono::milliseconds timeout) {
  if (!bev_) return;
  const timeval tv = to_timeval(timeout);
  bufferevent_set_timeouts(bev_.get(), nullptr, &tv);
  if (bufferevent_write(bev_.get(), packets.data(), packets.size()) != 0) {
    deferred_failure_ = "cannot queue a packet (out of memory)";
    arm_timer(std::chrono::milliseconds(0));
  }
}

void MilterConnection::await_reply(std::chrono::milliseconds timeout) {
  reply_timeout_ = timeout;
  arm_timer(timeout);
}

void MilterConnection::close() noexcept {
  bev_.reset();
  if (timer_) evtimer_del(timer_.get());
}

std::size_t MilterConnection::unsent() const {
  return bev_ ? evbuffer_get_length(bufferevent_get_output(bev_.get())) : 0;
}

void MilterConnection::arm_timer(std::chrono::milliseconds timeout) {
  const timeval tv = to_timeval(timeout);
  evtimer_add(timer_.get(), &tv);
}

void MilterConnection::connected() {
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  // Offer everything we can do; the milter answers with the subset it wants.
  send(encode_negotiate(kVersion, action::all, step::all_we_offer), spec_.connect_timeout);
}

void MilterConnection::check_negotiation(const Reply& reply) {
  if (reply.kind != Reply::Kind::negotiate) throw ProtocolError("the first reply is not the negotiation");
  const Negotiation& n = reply.negotiation;
  // Version 2 is the oldest libmilter still in use; a newer one than we
  // offered would be a milter that does not listen.
  if (n.version < 2 || n.version > kVersion) throw ProtocolError(fmt::format("version {} not supported", n.version));
  if (n.actions & ~action::all) throw ProtocolError(fmt::format("asks for actions {:#x} we did not offer", n.actions));
  if (n.steps & ~step::all_we_offer) {
    throw ProtocolError(fmt::format("asks for protocol steps {:#x} we did not offer", n.steps));
  }
  negotiation_ = n;
  negotiated_ = true;
}

void MilterConnection::read_packets() {
  evbuffer* input = bufferevent_get_input(bev_.get());
  const std::size_t length = evbuffer_get_length(input);
  std::string bytes(length, '\0');
  evbuffer_remove(input, bytes.data(), length);
  reader_.feed(bytes);
  // The handler may close() this connection; stop at once if it does.
  while (bev_) {
    std::optional<Reply> reply = reader_.next();
    if (!reply) return;
    if (!negotiated_) {
      check_negotiation(*reply);
      evtimer_del(timer_.get());
      handlers_.negotiated();
    } else if (reply->kind == Reply::Kind::progress) {
      // The milter is still working (a slow scan): the timeout starts again.
      if (reply_timeout_.count() > 0) arm_timer(reply_timeout_);
    } else {
      evtimer_del(timer_.get());
      handlers_.reply(std::move(*reply));
    }
  }
}

void MilterConnection::fail(std::string why) noexcept {
  close();
  try {
    handlers_.failed(why);
  } catch (const std::exception& e) {
    log::error("milter={}: after its failure ({}): {}", spec_.name, why, e.what());
  }
}

// --- trampolines -------------------------------------------------------------

void MilterConnection::event_cb(bufferevent*, short events, void* self) noexcept {
  auto& c = *static_cast<MilterConnection*>(self);
  try {
    if (events & BEV_EVENT_CONNECTED) return c.connected();
    if (events & BEV_EVENT_TIMEOUT) return c.fail(fmt::format("not reading (write timed out)"));
    if (events & BEV_EVENT_EOF) return c.fail("closed the connection");
    const int err = EVUTIL_SOCKET_ERROR();
    c.fail(fmt::format("{}: {}", c.negotiated_ ? "socket error" : "connect", evutil_socket_error_to_string(err)));
  } catch (const std::exception& e) {
    c.fail(e.what());
  }
}

void MilterConnection::read_cb(bufferevent*, void* self) noexcept {
  auto& c = *static_cast<MilterConnection*>(self);
  try {
    c.read_packets();
  } catch (const std::exception& e) {
    if (c.bev_) c.fail(fmt::format("protocol error: {}", e.what()));
  }
}

void MilterConnection::write_cb(bufferevent*, void* self) noexcept {
  auto& c = *static_cast<MilterConnection*>(self);
  try {
    if (c.negotiated_) c.handlers_.drained();
  } catch (const std::exception& e) {
    if (c.bev_) c.fail(e.what());
  }
}

void MilterConnection::timer_cb(evutil_socket_t, short, void* self) noexcept {
  auto& c = *static_cast<MilterConnection*>(self);
  try {
    if (!c.deferred_failure_.empty()) return c.fail(std::exchange(c.deferred_failure_, {}));
    if (!c.negotiated_) return c.fail(fmt::format("no negotiation within {} ms", c.spec_.connect_timeout.count()));
    c.fail(fmt::format("no reply within {} ms", c.reply_timeout_.count()));
  } catch (const std::exception& e) {
    c.fail(e.what());
  }
}

}  // namespace wsmtp::listener::milter
