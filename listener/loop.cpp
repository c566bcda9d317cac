// libevent plumbing for one loop. Every callback is a static noexcept
// trampoline: an exception from one session closes that session only (STYLE §4).
// Memory per connection is bounded: the input buffer by a read high-watermark and
// by not reading while the session is parked, the output by not processing input
// while more than kMaxPendingOutput bytes of replies are unsent. Under TLS that
// count is the filter's: its socket bufferevent only takes kMaxPendingOutput more.
#include "loop.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstring>
#include <stdexcept>

#include "identity.h"
#include "log.h"
#include "replies.h"
#include "tls.h"

namespace wsmtp::listener {

namespace {

constexpr std::size_t kMaxPendingOutput = 64 * 1024;
// Enough for a data piece plus pipelined commands; beyond it libevent stops reading.
constexpr std::size_t kInputHighWatermark = 128 * 1024;
// After accept() fails (EMFILE, ENFILE, ENOBUFS) the listener pauses this long
// instead of spinning on a socket that stays readable.
constexpr timeval kAcceptPause{1, 0};
// After the grace period, commits already running get this long to finish and
// be answered before the loop stops regardless.
constexpr timeval kFinalGrace{30, 0};

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

Loop::Loop(LoopSettings settings, ClientLimits& limits, ShardStores& stores, StoreWorkerPool& auth_pool,
           const std::atomic<bool>& queue_full, const BacklogWatch& backlogs, int index)
    : index_(index),
      settings_(std::move(settings)),
      limits_(limits),
      identity_(common::worker_identity()),
      stores_(stores),
      auth_pool_(auth_pool),
      queue_full_(queue_full),
      backlogs_(backlogs),
      recipient_cache_(settings_.config->recipient_cache_time) {
  base_.reset(event_base_new());
  if (!base_) throw std::runtime_error("event_base_new failed");
  control_.reset(event_new(base_.get(), -1, 0, &Loop::control_cb, this));
  if (!control_) throw std::runtime_error("event_new failed for the loop control event");
  cached_answers_event_.reset(event_new(base_.get(), -1, 0, &Loop::cached_answers_cb, this));
  if (!cached_answers_event_) throw std::runtime_error("event_new failed for the recipient cache event");
  auto on_done = [this](std::uint64_t id, StoreResult result) { on_store_done(id, std::move(result)); };
  endpoints_ = stores_.attach(base_.get(), on_done);
  auth_endpoint_ = auth_pool_.attach(base_.get(), on_done);
}

Loop::~Loop() {
  // Sockets first (their callbacks point at connections). The shared store
  // pool was stopped by the server: no result arrives any more.
  connections_.clear();
  listeners_.clear();
}

void Loop::run(std::vector<common::UniqueFd> listeners) {
  for (auto& fd : listeners) {
    common::ListenerPtr listener(evconnlistener_new(base_.get(), &Loop::accept_cb, this,
                                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd.get()));
    if (!listener) throw std::runtime_error("evconnlistener_new failed");
    fd.release();  // the evconnlistener owns it now (LEV_OPT_CLOSE_ON_FREE)
    evconnlistener_set_error_cb(listener.get(), &Loop::accept_error_cb);
    listeners_.push_back(std::move(listener));
  }
  event_base_dispatch(base_.get());
  log::info("loop {} stopped; {} connection(s) left", index_, connections_.size());
}

void Loop::post_config(LoopSettings settings) {
  {
    std::lock_guard lock(control_mutex_);
    posted_settings_ = std::make_unique<LoopSettings>(std::move(settings));
  }
  event_active(control_.get(), EV_READ, 0);
}

void Loop::post_shutdown() {
  {
    std::lock_guard lock(control_mutex_);
    ++posted_shutdowns_;
  }
  event_active(control_.get(), EV_READ, 0);
}

// --- trampolines -------------------------------------------------------------

void Loop::accept_cb(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int, void* self) noexcept {
  common::UniqueFd owner(fd);  // closes fd unless accept() hands it on
  try {
    static_cast<Loop*>(self)->accept(owner.release(), addr);
  } catch (const std::exception& e) {
    log::error("accept: {}", e.what());
  }
}

void Loop::accept_error_cb(evconnlistener* listener, void* self) noexcept {
  auto* loop = static_cast<Loop*>(self);
  log::error("accept failed: {}; pausing new connections for {}s", std::strerror(errno), kAcceptPause.tv_sec);
  evconnlistener_disable(listener);
  loop->resume_accept_.reset(evtimer_new(loop->base_.get(), &Loop::resume_accept_cb, self));
  if (loop->resume_accept_) evtimer_add(loop->resume_accept_.get(), &kAcceptPause);
}

void Loop::resume_accept_cb(evutil_socket_t, short, void* self) noexcept {
  auto* loop = static_cast<Loop*>(self);
  for (auto& l : loop->listeners_) evconnlistener_enable(l.get());
}

void Loop::grace_over_cb(evutil_socket_t, short, void* self) noexcept {
  auto* loop = static_cast<Loop*>(self);
  try {
    loop->grace_over();
  } catch (const std::exception& e) {
    log::error("shutdown: {}", e.what());
    event_base_loopbreak(loop->base_.get());
  }
}

void Loop::control_cb(evutil_socket_t, short, void* self) noexcept {
  auto* loop = static_cast<Loop*>(self);
  try {
    loop->handle_control();
  } catch (const std::exception& e) {
    log::error("loop control: {}", e.what());
    event_base_loopbreak(loop->base_.get());
  }
}

void Loop::read_cb(bufferevent*, void* conn) noexcept {
  auto& c = *static_cast<Connection*>(conn);
  try {
    c.loop->process_input(c);
  } catch (const std::exception& e) {
    c.loop->fail_connection(c, "read", e);
  }
}

void Loop::write_cb(bufferevent*, void* conn) noexcept {
  auto& c = *static_cast<Connection*>(conn);
  try {
    // Called when the output buffer has drained.
    if (c.session.closing()) {
      c.loop->after_activity(c);
    } else if (std::exchange(c.paused_for_output, false)) {
      c.loop->process_input(c);
    }
  } catch (const std::exception& e) {
    c.loop->fail_connection(c, "write", e);
  }
}

void Loop::event_cb(bufferevent*, short events, void* conn) noexcept {
  auto& c = *static_cast<Connection*>(conn);
  try {
    if (events & BEV_EVENT_CONNECTED) return c.loop->on_tls_event(c, events);
    if ((events & BEV_EVENT_TIMEOUT) && (events & BEV_EVENT_READING) && !c.session.closing()) {
      c.session.on_timeout();  // queues the 421; the socket closes once it is sent
    } else {
      // EOF, a socket or TLS error, or a client that does not read what we send.
      if (events & BEV_EVENT_ERROR) log::debug("client={} socket error: {}", c.client_ip, std::strerror(errno));
      c.session.on_disconnect();
      c.loop->close_socket(c);
    }
    c.loop->after_activity(c);
  } catch (const std::exception& e) {
    c.loop->fail_connection(c, "event", e);
  }
}

void Loop::tarpit_cb(evutil_socket_t, short, void* conn) noexcept {
  auto& c = *static_cast<Connection*>(conn);
  try {
    c.tarpitted = false;
    c.loop->process_input(c);
  } catch (const std::exception& e) {
    c.loop->fail_connection(c, "tarpit", e);
  }
}

// --- connections -------------------------------------------------------------

void Loop::accept(evutil_socket_t fd, const sockaddr* addr) {
  common::UniqueFd owner(fd);
  auto client = peer_address(addr);
  if (!client || shutting_down_) return;
  auto ip = client->str();
  // Fixed for the connection, so its release() matches its admit() across a reload.
  auto key = limit_key(*client, settings_.config->ipv6_limit_prefix);
  if (!admitted(owner.get(), *client, ip, key)) return;
  common::BufferEventPtr bev(bufferevent_socket_new(base_.get(), owner.get(), BEV_OPT_CLOSE_ON_FREE));
  if (!bev) {
    limits_.release(key);
    throw std::runtime_error("bufferevent_socket_new failed");
  }
  owner.release();  // the bufferevent owns the fd now (BEV_OPT_CLOSE_ON_FREE)

  auto id = next_id_++;
  SessionContext context{*client, identity_};
  context.client_port = ntohs(addr->sa_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port
                                                          : reinterpret_cast<const sockaddr_in*>(addr)->sin_port);
  context.queue_ids = &stores_;
  context.placement = &stores_.placement();
  context.queue_full = &queue_full_;
  context.backlogs = &backlogs_;
  const auto& config = *settings_.config;
  Deadlines::Limits deadline_limits{.command_deadline = config.command_deadline,
                                    .data_base = config.data_timeout,
                                    .min_data_rate = config.min_data_rate,
                                    .max_session_time = config.max_session_time};
  auto conn = std::make_unique<Connection>(this, id, ip, std::move(bev), Session(settings_.config, std::move(context)),
                                           Deadlines(deadline_limits, Deadlines::Clock::now()));
  auto& c = *conn;
  c.limit_key = std::move(key);
  if (!config.milters->empty()) {
    milter::Chain::Callbacks callbacks{
        .verdict = [this, id](milter::Verdict verdict) { on_milter_verdict(id, std::move(verdict)); },
        .drained = [this, id] { on_milter_drained(id); }};
    c.milters = std::make_unique<milter::Chain>(base_.get(), config.milters, "client=" + ip, std::move(callbacks));
  }
  connections_.emplace(id, std::move(conn));
  log::debug("client={} connected (connection {})", ip, id);

  bufferevent_setcb(c.bev.get(), &Loop::read_cb, &Loop::write_cb, &Loop::event_cb, &c);
  bufferevent_setwatermark(c.bev.get(), EV_READ, 0, kInputHighWatermark);
  auto read_tv = to_timeval(settings_.config->command_timeout);
  bufferevent_set_timeouts(c.bev.get(), &read_tv, &read_tv);
  bufferevent_enable(c.bev.get(), EV_READ | EV_WRITE);
  after_activity(c);  // sends the greeting
}

// Over a limit the client gets one 421 line and a clean close. Best effort,
// non-blocking: a fresh socket's send buffer takes one line.
bool Loop::admitted(evutil_socket_t fd, const IpAddress& client, const std::string& ip, const std::string& key) {
  const auto& config = *settings_.config;
  ClientLimits::Limits limits{.max_connections = config.max_connections,
                              .max_per_client = config.max_connections_per_client,
                              .max_rate_per_minute = config.max_connection_rate};
  auto verdict = limits_.admit(key, ClientLimits::Clock::now(), limits, config.is_limit_exempt(client));
  if (verdict == ClientLimits::Admit::ok) return true;
  bool rate = verdict == ClientLimits::Admit::rate_exceeded;
  log::info("client={} refused: {} ({})", ip, rate ? "connection rate exceeded" : "too many connections", key);
  auto wire = (rate ? common::smtp::replies::connection_rate_exceeded(config.hostname)
                    : common::smtp::replies::too_many_connections(config.hostname))
                  .wire();
  [[maybe_unused]] auto sent = ::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return false;
}

// Feeds complete lines, pieces of overlong ones, and BDAT octets to the session
// until it parks, closes, asks for TLS, is tarpitted, or the input runs out.
// Pipelined commands that arrive while it is parked stay in the buffer, in order.
void Loop::process_input(Connection& c) {
  while (c.bev && !c.session.closing() && !c.session.waiting() && !c.session.wants_tls() && !c.tarpitted) {
    if (evbuffer_get_length(bufferevent_get_output(c.bev.get())) > kMaxPendingOutput) {
      c.paused_for_output = true;
      break;
    }
    if (c.milters && c.milters->backlog() > milter::Chain::kBackpressure) {
      c.paused_for_milters = true;
      break;
    }
    if (!feed_once(c)) break;
    emit(c);
    pass_milter_events(c);
  }
  after_activity(c);
}

// One call into the session; false if the buffered input is not enough for one.
bool Loop::feed_once(Connection& c) {
  evbuffer* in = bufferevent_get_input(c.bev.get());
  std::size_t available = evbuffer_get_length(in);
  if (auto raw = c.session.raw_remaining(); raw > 0) {
    std::size_t take = std::min<std::uint64_t>({raw, available, Session::kDataPiece});
    if (take == 0) return false;
    auto* bytes = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(take)));
    c.session.on_raw(std::string_view(bytes, take));
    evbuffer_drain(in, take);
    c.deadlines.data_received(take);
    return true;
  }
  std::size_t limit = c.session.max_piece();
  evbuffer_ptr eol = evbuffer_search_eol(in, nullptr, nullptr, EVBUFFER_EOL_LF);
  std::size_t take = 0;
  bool complete = false;
  if (eol.pos >= 0 && static_cast<std::size_t>(eol.pos) < limit) {
    take = static_cast<std::size_t>(eol.pos);
    complete = true;
  } else if (available >= limit) {
    take = limit;  // a line longer than the session takes at once
  } else {
    return false;  // wait for more input
  }
  auto* bytes = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(take + complete)));
  bool data = c.session.in_data();
  c.session.on_line(std::string_view(bytes, take), complete);
  evbuffer_drain(in, take + complete);
  if (data)
    c.deadlines.data_received(take + complete);
  else if (complete)
    c.deadlines.command_done(Deadlines::Clock::now());
  return true;
}

// Sends the session's replies as they come (so a pipelining client sees them in
// order), or holds them back while the tarpit delays this client.
void Loop::emit(Connection& c) {
  auto out = c.session.take_output();
  auto delay = c.session.take_tarpit();
  if (c.session.closing()) delay = std::chrono::seconds(0);
  if (delay.count() > 0 && !c.tarpitted && c.bev) {
    if (!c.tarpit) c.tarpit.reset(evtimer_new(base_.get(), &Loop::tarpit_cb, &c));
    auto tv = to_timeval(delay);
    if (c.tarpit && evtimer_add(c.tarpit.get(), &tv) == 0) c.tarpitted = true;
  }
  if (c.tarpitted) {
    c.held_output += out;
    return;
  }
  if (!c.held_output.empty()) out = std::exchange(c.held_output, {}) + out;
  if (!out.empty() && c.bev) bufferevent_write(c.bev.get(), out.data(), out.size());
}

// Sends pending output, submits the session's store op, starts TLS when asked,
// adjusts reading and timeouts, and closes or forgets the connection when it is
// finished. May destroy c: callers must not touch it afterwards.
void Loop::after_activity(Connection& c) {
  check_deadlines(c);
  emit(c);
  pass_milter_events(c);
  if (auto op = c.session.take_store_op()) {
    if (!answer_without_store(c, *op)) submit(c, std::move(*op));
    c.op_in_flight = true;
  }
  // Sessions took queue ids; the next block is reserved before they run out.
  stores_.refill_due(endpoints_, std::chrono::steady_clock::now());
  if (c.bev && c.session.wants_tls() && !c.tarpitted && !c.session.closing()) start_tls(c);
  if (c.bev) {
    if (c.session.closing() && !c.tarpitted) {
      bufferevent_disable(c.bev.get(), EV_READ);
      close_when_sent(c);
    } else if (c.session.waiting() || c.paused_for_output || c.paused_for_milters || c.tarpitted ||
               c.session.closing()) {
      // Parked: no reading (backpressure), and so no read timeout either.
      bufferevent_disable(c.bev.get(), EV_READ);
    } else {
      if (c.session.in_data() != c.data_timeouts) {
        c.data_timeouts = c.session.in_data();
        const auto& config = *settings_.config;
        auto tv = to_timeval(c.data_timeouts ? config.data_timeout : config.command_timeout);
        bufferevent_set_timeouts(c.bev.get(), &tv, &tv);
      }
      bufferevent_enable(c.bev.get(), EV_READ);
    }
    arm_deadline(c);
  }
  forget_if_done(c);
}

// A TLS filter's write callback fires once its bytes reached the socket
// bufferevent under it, which may still hold them: the socket is closed only when
// both are empty, polling the lower one briefly (its callbacks belong to the filter).
void Loop::close_when_sent(Connection& c) {
  std::size_t unsent = evbuffer_get_length(bufferevent_get_output(c.bev.get()));
  if (auto* under = bufferevent_get_underlying(c.bev.get()))
    unsent += evbuffer_get_length(bufferevent_get_output(under));
  if (unsent == 0) return close_socket(c);
  if (evbuffer_get_length(bufferevent_get_output(c.bev.get())) > 0) return;  // write_cb comes back here
  if (!c.linger) c.linger.reset(evtimer_new(base_.get(), &Loop::linger_cb, &c));
  constexpr timeval kLingerPoll{0, 20000};
  if (c.linger) evtimer_add(c.linger.get(), &kLingerPoll);
}

void Loop::linger_cb(evutil_socket_t, short, void* conn) noexcept {
  auto& c = *static_cast<Connection*>(conn);
  try {
    if (c.bev) c.loop->close_when_sent(c);
    c.loop->forget_if_done(c);
  } catch (const std::exception& e) {
    c.loop->fail_connection(c, "linger", e);
  }
}

void Loop::forget_if_done(Connection& c) {
  if (c.bev || c.op_in_flight) return;
  connections_.erase(c.id);  // destroys c
  if (shutting_down_ && connections_.empty()) event_base_loopexit(base_.get(), nullptr);
}

// RFC 3207 §4: the 220 is already queued in the socket's output; everything the
// client sent after STARTTLS is thrown away unread (CVE-2011-0411), then the
// socket bufferevent is wrapped in a TLS filter that owns it from now on.
void Loop::start_tls(Connection& c) {
  evbuffer* in = bufferevent_get_input(c.bev.get());
  if (auto pipelined = evbuffer_get_length(in); pipelined > 0) {
    log::info("client={} sent {} bytes after STARTTLS before the handshake; discarded", c.client_ip, pipelined);
    evbuffer_drain(in, pipelined);
  }
  if (!settings_.tls) throw std::runtime_error("STARTTLS accepted without a TLS context");
  common::SslPtr ssl(SSL_new(settings_.tls.get()));
  if (!ssl) throw std::runtime_error("SSL_new failed");
  bufferevent* filter = bufferevent_openssl_filter_new(base_.get(), c.bev.get(), ssl.get(), BUFFEREVENT_SSL_ACCEPTING,
                                                       BEV_OPT_CLOSE_ON_FREE);
  if (!filter) throw std::runtime_error("bufferevent_openssl_filter_new failed");
  ssl.release();    // the filter owns the SSL now (BEV_OPT_CLOSE_ON_FREE)
  c.bev.release();  // ... and the socket bufferevent under it
  c.bev.reset(filter);
  bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
  bufferevent_setcb(filter, &Loop::read_cb, &Loop::write_cb, &Loop::event_cb, &c);
  bufferevent_setwatermark(filter, EV_READ, 0, kInputHighWatermark);
  // The filter moves its output into the socket bufferevent as fast as it can
  // encrypt, so the cap process_input checks on the filter would never trip and
  // a client that does not read would grow the socket's buffer without bound.
  // Above this high-watermark the filter stops moving bytes down (it resumes
  // when the socket drains), so unsent replies stay in the filter, where they count.
  bufferevent_setwatermark(bufferevent_get_underlying(filter), EV_WRITE, 0, kMaxPendingOutput);
  auto tv = to_timeval(settings_.config->command_timeout);
  bufferevent_set_timeouts(filter, &tv, &tv);
  bufferevent_enable(filter, EV_READ | EV_WRITE);
}

void Loop::on_tls_event(Connection& c, short) {
  auto* ssl = bufferevent_openssl_get_ssl(c.bev.get());
  if (!ssl || !c.session.wants_tls()) throw std::runtime_error("unexpected connected event");
  c.session.on_tls_started(describe_tls(ssl));
  process_input(c);
}

// A recipient the cache knows, and AUTH from an address that failed too
// often, are answered without the store. Other recipient checks and password
// checks are noted so that the store's answer can be remembered.
bool Loop::answer_without_store(Connection& c, const StoreOp& op) {
  auto now = RecipientCache::Clock::now();
  if (const auto* check = std::get_if<CheckRecipient>(&op)) {
    if (!recipient_cache_.known(check->address, now)) {
      c.checking_recipient = check->address;
      return false;
    }
    StoreResult known;
    known.ok = true;
    known.verdict = common::RecipientVerdict::known_local;
    post_answer(c, std::move(known));
    return true;
  }
  if (std::holds_alternative<VerifyUser>(op)) {
    if (!limits_.auth_blocked(c.limit_key, now, settings_.config->max_auth_failures_per_client)) {
      c.verifying_user = true;
      return false;
    }
    StoreResult blocked;
    blocked.ok = true;
    blocked.auth_blocked = true;
    post_answer(c, std::move(blocked));
    return true;
  }
  return false;
}

// Password checks go to their own bounded pool. When it is full the answer is
// a temporary failure (the session's 454 4.7.0 for a failed op), which is not
// counted as a failed AUTH: the client did nothing wrong and may try again.
void Loop::submit(Connection& c, StoreOp op) {
  if (!std::holds_alternative<VerifyUser>(op)) {
    // Refused at once when the op's shard cannot take it.
    if (auto refused = stores_.submit(endpoints_, c.id, std::move(op))) post_answer(c, std::move(*refused));
    return;
  }
  if (auth_pool_.try_submit(auth_endpoint_, c.id, std::move(op))) return;
  log::info("client={} AUTH deferred: {} password checks already waiting", c.client_ip,
            settings_.config->auth_check_queue);
  StoreResult busy;
  busy.error = "password checks busy";
  post_answer(c, std::move(busy));
}

void Loop::post_answer(Connection& c, StoreResult result) {
  cached_answers_.emplace_back(c.id, std::move(result));
  event_active(cached_answers_event_.get(), EV_READ, 0);
}

void Loop::cached_answers_cb(evutil_socket_t, short, void* self) noexcept {
  auto* loop = static_cast<Loop*>(self);
  auto answers = std::exchange(loop->cached_answers_, {});
  for (auto& [id, result] : answers) loop->on_store_done(id, std::move(result));
}

void Loop::on_store_done(std::uint64_t id, StoreResult result) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;  // a fire-and-forget op, or a session already gone
  auto& c = *it->second;
  if (!c.checking_recipient.empty()) {
    if (result.ok && result.verdict == common::RecipientVerdict::known_local)
      recipient_cache_.remember_known(c.checking_recipient, RecipientCache::Clock::now());
    c.checking_recipient.clear();
  }
  if (std::exchange(c.verifying_user, false) && result.ok && !result.verified)
    limits_.note_auth_failure(c.limit_key, RecipientCache::Clock::now(), settings_.config->auth_failure_window);
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

void Loop::pass_milter_events(Connection& c) {
  auto events = c.session.take_milter_events();
  if (!c.milters) return;
  for (auto& event : events) c.milters->submit(std::move(event));
}

void Loop::on_milter_verdict(std::uint64_t id, milter::Verdict verdict) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  auto& c = *it->second;
  try {
    c.session.on_milter_verdict(verdict);
    if (c.bev && !c.session.closing()) return process_input(c);
    after_activity(c);
  } catch (const std::exception& e) {
    fail_connection(c, "milter verdict", e);
  }
}

// The milters took what they were given: read the client on.
void Loop::on_milter_drained(std::uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end() || !std::exchange(it->second->paused_for_milters, false)) return;
  try {
    process_input(*it->second);
  } catch (const std::exception& e) {
    fail_connection(*it->second, "milter drained", e);
  }
}

void Loop::close_socket(Connection& c) {
  if (!c.bev) return;
  c.bev.reset();
  c.deadline_timer.reset();
  c.deadline_armed = Deadlines::Clock::time_point::max();
  c.tarpit.reset();
  c.linger.reset();
  c.tarpitted = false;
  limits_.release(c.limit_key);
  log::debug("client={} closed (connection {})", c.client_ip, c.id);
}

void Loop::fail_connection(Connection& c, const char* where, const std::exception& e) noexcept {
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

// --- control: reload and shutdown ---------------------------------------------

void Loop::handle_control() {
  std::unique_ptr<LoopSettings> settings;
  int shutdowns = 0;
  {
    std::lock_guard lock(control_mutex_);
    settings = std::move(posted_settings_);
    shutdowns = posted_shutdowns_;
  }
  if (settings) {
    if (settings->config->recipient_cache_time != settings_.config->recipient_cache_time)
      recipient_cache_.set_ttl(settings->config->recipient_cache_time);
    settings_ = std::move(*settings);
  }
  if (shutdowns > shutdowns_seen_) {
    bool again = shutdowns_seen_ > 0 || shutdowns > 1;
    shutdowns_seen_ = shutdowns;
    if (again) {
      log::info("loop {}: stopping now", index_);
      event_base_loopbreak(base_.get());
    } else {
      begin_shutdown();
    }
  }
}

void Loop::begin_shutdown() {
  shutting_down_ = true;
  listeners_.clear();  // stop accepting; the port is free for a successor
  grace_timer_.reset(evtimer_new(base_.get(), &Loop::grace_over_cb, this));
  auto grace = to_timeval(settings_.config->shutdown_grace);
  if (grace_timer_) evtimer_add(grace_timer_.get(), &grace);
  std::vector<std::uint64_t> ids;
  ids.reserve(connections_.size());
  for (const auto& [id, c] : connections_) ids.push_back(id);
  for (auto id : ids) {
    auto it = connections_.find(id);
    if (it == connections_.end()) continue;
    it->second->session.on_shutdown();  // 421 at once if idle, else after its op
    after_activity(*it->second);
  }
  if (connections_.empty()) event_base_loopexit(base_.get(), nullptr);
}

// Sessions still receiving are given up: their messages never reach state 1.
// Ops not yet started are cancelled (they fail, so nothing is committed for a
// client that will not hear of it); commits already running finish and are
// answered before the loop stops.
void Loop::grace_over() {
  if (std::exchange(grace_over_, true)) {
    log::warn("loop {}: final grace over with {} connection(s) left", index_, connections_.size());
    event_base_loopbreak(base_.get());
    return;
  }
  log::warn("loop {}: shutdown grace period over with {} connection(s) left", index_, connections_.size());
  stores_.cancel_queued(endpoints_);
  auth_pool_.cancel_queued(auth_endpoint_);
  std::vector<std::uint64_t> ids;
  for (const auto& [id, c] : connections_)
    if (!c->op_in_flight) ids.push_back(id);
  for (auto id : ids) {
    auto it = connections_.find(id);
    if (it == connections_.end()) continue;
    auto& c = *it->second;
    c.session.on_disconnect();
    close_socket(c);
    after_activity(c);
  }
  if (connections_.empty()) return (void)event_base_loopexit(base_.get(), nullptr);
  evtimer_add(grace_timer_.get(), &kFinalGrace);
}

}  // namespace wsmtp::listener
