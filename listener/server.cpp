// libevent plumbing for the listener. Every callback is a static noexcept
// trampoline: an exception from one session closes that session only (STYLE §4).
// Memory per connection is bounded: the input buffer by a read high-watermark and
// by not reading while the session is parked, the output by not processing input
// while more than kMaxPendingOutput bytes of replies are unsent.
#include "server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <csignal>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "identity.h"
#include "log.h"
#include "smtp/replies.h"
#include "unique_fd.h"

namespace wsmtp::listener {

namespace {

constexpr std::size_t kMaxPendingOutput = 64 * 1024;
// Enough for a data piece plus pipelined commands; beyond it libevent stops reading.
constexpr std::size_t kInputHighWatermark = 128 * 1024;
constexpr int kListenBacklog = 511;
// How long a stopping server waits for outstanding store ops and unsent replies.
constexpr timeval kShutdownGrace{10, 0};
// After accept() fails (EMFILE, ENFILE, ENOBUFS) the listener pauses this long
// instead of spinning on a socket that stays readable.
constexpr timeval kAcceptPause{1, 0};

timeval to_timeval(std::chrono::seconds s) { return timeval{static_cast<time_t>(s.count()), 0}; }

std::optional<IpAddress> peer_address(const sockaddr* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, buf, sizeof(buf));
  } else if (addr->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, buf, sizeof(buf));
  } else {
    return std::nullopt;
  }
  return IpAddress::parse(buf);
}

}  // namespace

Server::Server(const ListenerConfig& config, StoreWorkerPool::StoreFactory factory)
    : config_(config), identity_(common::worker_identity()) {
  // Must precede event_base_new so the base gets locks and a notification
  // channel: the store workers activate the completion event from their threads.
  if (evthread_use_pthreads() != 0) throw std::runtime_error("evthread_use_pthreads failed");
  base_.reset(event_base_new());
  if (!base_) throw std::runtime_error("event_base_new failed");
  pool_ = std::make_unique<StoreWorkerPool>(
      base_.get(), std::move(factory), config_.store_connections,
      [this](std::uint64_t id, StoreResult result) { on_store_done(id, std::move(result)); });
}

Server::~Server() {
  // Sockets first (their callbacks point at connections), then the workers.
  connections_.clear();
  listener_.reset();
  if (pool_) pool_->stop();
}

void Server::bind() {
  sockaddr_storage storage{};
  socklen_t len = 0;
  const auto& listen = config_.listen;
  if (listen.address.family == IpAddress::Family::v4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(listen.port);
    std::memcpy(&sin->sin_addr, listen.address.bytes.data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(listen.port);
    std::memcpy(&sin6->sin6_addr, listen.address.bytes.data(), 16);
    len = sizeof(sockaddr_in6);
  }
  listener_.reset(evconnlistener_new_bind(base_.get(), &Server::accept_cb, this,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                          kListenBacklog, reinterpret_cast<sockaddr*>(&storage),
                                          static_cast<int>(len)));
  if (!listener_) throw std::runtime_error(fmt::format("cannot listen on {}: {}", listen.str(), std::strerror(errno)));
  evconnlistener_set_error_cb(listener_.get(), &Server::accept_error_cb);
  log::info("listening on {} as {}", listen.str(), config_.hostname);
}

void Server::run() {
  sigterm_.reset(evsignal_new(base_.get(), SIGTERM, &Server::signal_cb, this));
  sigint_.reset(evsignal_new(base_.get(), SIGINT, &Server::signal_cb, this));
  if (!sigterm_ || !sigint_ || event_add(sigterm_.get(), nullptr) != 0 || event_add(sigint_.get(), nullptr) != 0)
    throw std::runtime_error("cannot install signal handlers");
  event_base_dispatch(base_.get());
  log::info("stopped; {} connection(s) left", connections_.size());
}

// --- trampolines -------------------------------------------------------------

void Server::accept_cb(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int, void* self) noexcept {
  common::UniqueFd owner(fd);  // closes fd unless accept() hands it on
  try {
    static_cast<Server*>(self)->accept(owner.release(), addr);
  } catch (const std::exception& e) {
    log::error("accept: {}", e.what());
  }
}

void Server::accept_error_cb(evconnlistener* listener, void* self) noexcept {
  auto* server = static_cast<Server*>(self);
  log::error("accept failed: {}; pausing new connections for {}s", std::strerror(errno), kAcceptPause.tv_sec);
  evconnlistener_disable(listener);
  server->resume_accept_.reset(evtimer_new(server->base_.get(), &Server::resume_accept_cb, self));
  if (server->resume_accept_) evtimer_add(server->resume_accept_.get(), &kAcceptPause);
}

void Server::resume_accept_cb(evutil_socket_t, short, void* self) noexcept {
  auto* server = static_cast<Server*>(self);
  if (server->listener_) evconnlistener_enable(server->listener_.get());
}

void Server::grace_over_cb(evutil_socket_t, short, void* self) noexcept {
  auto* server = static_cast<Server*>(self);
  log::warn("shutdown grace period over with {} connection(s) left", server->connections_.size());
  event_base_loopbreak(server->base_.get());
}

void Server::read_cb(bufferevent*, void* conn) noexcept {
  auto& c = *static_cast<Connection*>(conn);
  try {
    c.server->process_input(c);
  } catch (const std::exception& e) {
    c.server->fail_connection(c, "read", e);
  }
}

void Server::write_cb(bufferevent*, void* conn) noexcept {
  auto& c = *static_cast<Connection*>(conn);
  try {
    // Called when the output buffer has drained.
    if (c.session.closing()) {
      c.server->close_socket(c);
      c.server->after_activity(c);
    } else if (std::exchange(c.paused_for_output, false)) {
      c.server->process_input(c);
    }
  } catch (const std::exception& e) {
    c.server->fail_connection(c, "write", e);
  }
}

void Server::event_cb(bufferevent*, short events, void* conn) noexcept {
  auto& c = *static_cast<Connection*>(conn);
  try {
    if ((events & BEV_EVENT_TIMEOUT) && (events & BEV_EVENT_READING) && !c.session.closing()) {
      c.session.on_timeout();  // queues the 421; the socket closes once it is sent
    } else {
      // EOF, a socket error, or a client that does not read what we send.
      if (events & BEV_EVENT_ERROR) log::debug("client={} socket error: {}", c.client_ip, std::strerror(errno));
      c.session.on_disconnect();
      c.server->close_socket(c);
    }
    c.server->after_activity(c);
  } catch (const std::exception& e) {
    c.server->fail_connection(c, "event", e);
  }
}

void Server::signal_cb(evutil_socket_t signal, short, void* self) noexcept {
  auto* server = static_cast<Server*>(self);
  try {
    if (server->shutting_down_) {
      log::info("signal {} again: stopping now", signal);
      event_base_loopbreak(server->base_.get());
      return;
    }
    log::info("signal {}: shutting down", signal);
    server->begin_shutdown();
  } catch (const std::exception& e) {
    log::error("shutdown: {}", e.what());
    event_base_loopbreak(server->base_.get());
  }
}

// --- connections -------------------------------------------------------------

void Server::accept(evutil_socket_t fd, const sockaddr* addr) {
  common::UniqueFd owner(fd);
  auto client = peer_address(addr);
  if (!client || shutting_down_) return;
  auto ip = client->str();
  int& from_client = per_client_[ip];
  if (open_sockets_ >= config_.max_connections || from_client >= config_.max_connections_per_client) {
    // Best effort, non-blocking: a fresh socket's send buffer takes one line.
    log::info("client={} refused: too many connections ({} total, {} from client)", ip, open_sockets_, from_client);
    auto wire = common::smtp::replies::too_many_connections(config_.hostname).wire();
    [[maybe_unused]] auto sent = ::send(owner.get(), wire.data(), wire.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (from_client == 0) per_client_.erase(ip);
    return;
  }
  common::BufferEventPtr bev(bufferevent_socket_new(base_.get(), owner.get(), BEV_OPT_CLOSE_ON_FREE));
  if (!bev) throw std::runtime_error("bufferevent_socket_new failed");
  owner.release();  // the bufferevent owns the fd now (BEV_OPT_CLOSE_ON_FREE)

  auto id = next_id_++;
  auto conn = std::make_unique<Connection>(
      this, id, ip, std::move(bev), Session(config_, SessionContext{*client, identity_}));
  auto& c = *conn;
  connections_.emplace(id, std::move(conn));
  ++open_sockets_;
  ++from_client;
  log::debug("client={} connected (id {})", ip, id);

  bufferevent_setcb(c.bev.get(), &Server::read_cb, &Server::write_cb, &Server::event_cb, &c);
  bufferevent_setwatermark(c.bev.get(), EV_READ, 0, kInputHighWatermark);
  auto read_tv = to_timeval(config_.command_timeout);
  bufferevent_set_timeouts(c.bev.get(), &read_tv, &read_tv);
  bufferevent_enable(c.bev.get(), EV_READ | EV_WRITE);
  after_activity(c);  // sends the greeting
}

// Feeds complete lines (and pieces of overlong ones) to the session until it
// parks, closes, or the buffered input runs out. Pipelined commands that arrive
// while it is parked stay in the input buffer, in order.
void Server::process_input(Connection& c) {
  while (c.bev && !c.session.closing() && !c.session.waiting()) {
    if (evbuffer_get_length(bufferevent_get_output(c.bev.get())) > kMaxPendingOutput) {
      c.paused_for_output = true;
      break;
    }
    evbuffer* in = bufferevent_get_input(c.bev.get());
    std::size_t limit = c.session.max_piece();
    std::size_t available = evbuffer_get_length(in);
    evbuffer_ptr eol = evbuffer_search_eol(in, nullptr, nullptr, EVBUFFER_EOL_LF);
    std::size_t take = 0;
    bool complete = false;
    if (eol.pos >= 0 && static_cast<std::size_t>(eol.pos) < limit) {
      take = static_cast<std::size_t>(eol.pos);
      complete = true;
    } else if (available >= limit) {
      take = limit;  // a line longer than the session takes at once
    } else {
      break;  // wait for more input
    }
    auto* bytes = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(take + complete)));
    c.session.on_line(std::string_view(bytes, take), complete);
    evbuffer_drain(in, take + complete);
    // Send replies as they come so a pipelining client sees them in order.
    if (auto out = c.session.take_output(); !out.empty()) bufferevent_write(c.bev.get(), out.data(), out.size());
  }
  after_activity(c);
}

// Sends pending output, submits the session's store op, adjusts reading and
// timeouts, and closes or forgets the connection when it is finished. May destroy
// c: callers must not touch it afterwards.
void Server::after_activity(Connection& c) {
  if (auto out = c.session.take_output(); !out.empty() && c.bev)
    bufferevent_write(c.bev.get(), out.data(), out.size());
  if (auto op = c.session.take_store_op()) {
    pool_->submit(c.id, std::move(*op));
    c.op_in_flight = true;
  }
  if (c.bev) {
    if (c.session.closing()) {
      bufferevent_disable(c.bev.get(), EV_READ);
      if (evbuffer_get_length(bufferevent_get_output(c.bev.get())) == 0) close_socket(c);
    } else if (c.session.waiting() || c.paused_for_output) {
      // Parked: no reading (backpressure), and so no read timeout either.
      bufferevent_disable(c.bev.get(), EV_READ);
    } else {
      if (c.session.in_data() != c.data_timeouts) {
        c.data_timeouts = c.session.in_data();
        auto tv = to_timeval(c.data_timeouts ? config_.data_timeout : config_.command_timeout);
        bufferevent_set_timeouts(c.bev.get(), &tv, &tv);
      }
      bufferevent_enable(c.bev.get(), EV_READ);
    }
  }
  if (!c.bev && !c.op_in_flight) {
    connections_.erase(c.id);  // destroys c
    if (shutting_down_ && connections_.empty()) event_base_loopexit(base_.get(), nullptr);
  }
}

void Server::on_store_done(std::uint64_t id, StoreResult result) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;  // a fire-and-forget op, or a session already gone
  auto& c = *it->second;
  try {
    c.op_in_flight = false;
    c.session.on_store_result(result);
    // Commands pipelined behind the op are waiting in the input buffer.
    if (c.bev && !c.session.closing()) return process_input(c);
    after_activity(c);
  } catch (const std::exception& e) {
    fail_connection(c, "store result", e);
  }
}

void Server::close_socket(Connection& c) {
  if (!c.bev) return;
  c.bev.reset();
  --open_sockets_;
  if (auto it = per_client_.find(c.client_ip); it != per_client_.end() && --it->second <= 0) per_client_.erase(it);
  log::debug("client={} closed (id {})", c.client_ip, c.id);
}

void Server::fail_connection(Connection& c, const char* where, const std::exception& e) noexcept {
  log::error("client={} {}: {}; closing the session", c.client_ip, where, e.what());
  try {
    c.session.on_disconnect();
    close_socket(c);
    after_activity(c);
  } catch (const std::exception& again) {
    // Could not even clean up: drop it without its abort; the reaper removes the row.
    log::error("client={} cleanup: {}", c.client_ip, again.what());
    if (!c.op_in_flight) connections_.erase(c.id);
  }
}

void Server::begin_shutdown() {
  shutting_down_ = true;
  listener_.reset();  // stop accepting; the port is free for a successor
  grace_timer_.reset(evtimer_new(base_.get(), &Server::grace_over_cb, this));
  if (grace_timer_) evtimer_add(grace_timer_.get(), &kShutdownGrace);
  std::vector<std::uint64_t> ids;
  ids.reserve(connections_.size());
  for (const auto& [id, c] : connections_) ids.push_back(id);
  for (auto id : ids) {
    auto it = connections_.find(id);
    if (it == connections_.end()) continue;
    it->second->session.on_shutdown();
    after_activity(*it->second);
  }
  if (connections_.empty()) event_base_loopexit(base_.get(), nullptr);
}

}  // namespace wsmtp::listener
