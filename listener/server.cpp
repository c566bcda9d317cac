// Threads: the main thread only waits for signals; each loop thread runs its own
// event_base, and each loop's store workers post results back to that loop.
// Loops share nothing but the ClientLimits (mutex) and the settings they are
// handed (immutable, reference-counted).
#include "server.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "log.h"
#include "tls.h"

namespace wsmtp::listener {

namespace {

constexpr int kListenBacklog = 511;

std::shared_ptr<SSL_CTX> tls_context(const ListenerConfig& config) {
  if (!config.tls_enabled()) return nullptr;
  // shared_ptr: co-owned by the Server and every Loop; SSL objects made from it
  // take their own reference, so a reload never invalidates a running handshake.
  return std::shared_ptr<SSL_CTX>(make_tls_context(config).release(), SSL_CTX_free);
}

common::UniqueFd listening_socket(const ListenAddress& listen) {
  sockaddr_storage storage{};
  socklen_t len = 0;
  bool v6 = listen.address.family == IpAddress::Family::v6;
  if (!v6) {
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
  auto fail = [&](const char* what) {
    return std::runtime_error(fmt::format("cannot listen on {}: {}: {}", listen.str(), what, std::strerror(errno)));
  };
  common::UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw fail("socket");
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) throw fail("SO_REUSEADDR");
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) throw fail("SO_REUSEPORT");
  if (v6 && ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) throw fail("IPV6_V6ONLY");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), len) != 0) throw fail("bind");
  if (::listen(fd.get(), kListenBacklog) != 0) throw fail("listen");
  return fd;
}

}  // namespace

Server::Server(ListenerConfig config, const common::DatabaseConfig& database, StoreMakers makers, Reload reload)
    : reload_(std::move(reload)) {
  // Must precede every event_base_new so bases get locks and a notification
  // channel: store workers and the signal thread activate events across threads.
  if (evthread_use_pthreads() != 0) throw std::runtime_error("evthread_use_pthreads failed");
  settings_.tls = tls_context(config);
  settings_.config = std::make_shared<const ListenerConfig>(std::move(config));
  const auto& c = *settings_.config;
  const auto& shards = database.shards;
  std::vector<Placement::Shard> placed;
  for (const auto& s : shards) placed.push_back({.name = s.name, .id = s.id, .weight = s.weight});
  // A lone shard has no health state: with nowhere else to put mail, every
  // message tries it, as with the one database of before.
  const bool group = shards.size() > 1;
  placement_ = std::make_unique<Placement>(std::move(placed), group);
  std::optional<std::size_t> directory_shard;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    if (!directory_shard && database.is_directory(shards[i])) directory_shard = i;
    // The work queued for a shard that leaves the rotation is failed at once
    // (stores_ exists before any probe starts).
    if (group)
      probes_.push_back(std::make_unique<ShardProbe>(
          *placement_, i, [check = makers.check, i] { return check(i); }, ShardProbe::kPause,
          [this, i] { stores_->fail_queued(i); }));
  }
  auto shard_factory = [&](std::size_t i) -> StoreWorkerPool::StoreFactory {
    StoreMakers::Lost lost;
    if (group) lost = [probe = probes_[i].get()](const ShardFault& fault) { probe->lost(fault); };
    return [make = makers.shard, i, lost] { return make(i, lost); };
  };
  auto directory_factory = directory_shard ? shard_factory(*directory_shard) : makers.directory;
  std::vector<StoreWorkerPool::StoreFactory> per_shard;
  std::vector<QueueWatch::Shard> watched;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    per_shard.push_back(shard_factory(i));
    watched.push_back({.name = group ? shards[i].name : "", .factory = shard_factory(i)});
  }
  auth_pool_ = std::make_unique<StoreWorkerPool>(directory_factory, c.auth_check_threads, auth_ids_,
                                                 static_cast<std::size_t>(c.auth_check_queue));
  // Per shard one pool of store_connections for all loops: their whole
  // messages share the shard's group commits (store_worker.cpp). Before the
  // watches: their stores may report their shard lost at once.
  stores_ =
      std::make_unique<ShardStores>(*placement_, per_shard, directory_shard, directory_factory, c.store_connections);
  queue_watch_ = std::make_unique<QueueWatch>(
      std::move(watched), c.queue_max_size, c.queue_size_check_interval,
      [placement = placement_.get()](std::size_t shard, bool full) { placement->set_full(shard, full); });
  backlog_watch_ =
      std::make_unique<BacklogWatch>(std::move(per_shard), c.backlog_quotas.threshold(), c.backlog_check_interval);
  for (int i = 0; i < c.loops; ++i)
    loops_.push_back(std::make_unique<Loop>(settings_, limits_, *stores_, *auth_pool_, placement_->all_full_flag(),
                                            *backlog_watch_, i));
  for (auto& probe : probes_) probe->start();
  signal_base_.reset(event_base_new());
  if (!signal_base_) throw std::runtime_error("event_base_new failed");
}

Server::~Server() {
  for (auto& loop : loops_) loop->post_shutdown();
  for (auto& loop : loops_) loop->post_shutdown();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  // The queued aborts of closing sessions run, then the workers end, before
  // any loop (and its event base) goes.
  if (stores_) stores_->stop();
  if (auth_pool_) auth_pool_->stop();
  // Nothing reports a shard lost (and so touches stores_) after this.
  if (queue_watch_) queue_watch_->stop();
  if (backlog_watch_) backlog_watch_->stop();
  for (auto& probe : probes_) probe->stop();
}

void Server::bind() {
  sockets_.resize(loops_.size());
  for (const auto& listen : settings_.config->listen) {
    for (auto& per_loop : sockets_) per_loop.push_back(listening_socket(listen));
    log::info("listening on {} as {} ({} loops)", listen.str(), settings_.config->hostname, loops_.size());
  }
}

void Server::run() {
  sigterm_.reset(evsignal_new(signal_base_.get(), SIGTERM, &Server::signal_cb, this));
  sigint_.reset(evsignal_new(signal_base_.get(), SIGINT, &Server::signal_cb, this));
  sighup_.reset(evsignal_new(signal_base_.get(), SIGHUP, &Server::signal_cb, this));
  for (auto* ev : {sigterm_.get(), sigint_.get(), sighup_.get()})
    if (!ev || event_add(ev, nullptr) != 0) throw std::runtime_error("cannot install signal handlers");
  running_loops_ = static_cast<int>(loops_.size());
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    threads_.emplace_back([this, loop = loops_[i].get(), sockets = std::move(sockets_[i])]() mutable {
      try {
        loop->run(std::move(sockets));
      } catch (const std::exception& e) {
        log::fatal("event loop failed: {}", e.what());
      }
      // The last loop to finish ends the signal loop (event_base_loopbreak is
      // thread-safe with evthread locking).
      if (--running_loops_ == 0) event_base_loopbreak(signal_base_.get());
    });
  }
  // The signal base runs until the loops are told to stop; joining then waits
  // for each loop's graceful end.
  event_base_dispatch(signal_base_.get());
  for (auto& t : threads_) t.join();
  threads_.clear();
  log::info("stopped");
}

void Server::signal_cb(evutil_socket_t signal, short, void* self) noexcept {
  auto* server = static_cast<Server*>(self);
  try {
    server->on_signal(static_cast<int>(signal));
  } catch (const std::exception& e) {
    log::error("signal {}: {}", signal, e.what());
  }
}

void Server::on_signal(int signal) {
  if (signal == SIGHUP) return reload();
  log::info("signal {}: {}", signal, stopping_ ? "stopping now" : "shutting down");
  stopping_ = true;
  // The signal loop keeps running, so a second signal still arrives here.
  for (auto& loop : loops_) loop->post_shutdown();
}

// The whole new configuration is validated (read_listener_config checks every
// key and loads the certificate) before anything changes; on any error the old
// one stays. Listening addresses and the number of loops need a restart.
void Server::reload() {
  ListenerConfig fresh;
  std::shared_ptr<SSL_CTX> tls;
  try {
    fresh = reload_();
    tls = tls_context(fresh);
  } catch (const std::exception& e) {
    log::error("reload failed, keeping the running configuration: {}", e.what());
    return;
  }
  const auto& old = *settings_.config;
  if (fresh.loops != old.loops || fresh.store_connections != old.store_connections ||
      fresh.auth_check_threads != old.auth_check_threads || fresh.auth_check_queue != old.auth_check_queue ||
      fresh.queue_max_size != old.queue_max_size || fresh.queue_size_check_interval != old.queue_size_check_interval ||
      fresh.backlog_check_interval != old.backlog_check_interval || fresh.listen.size() != old.listen.size() ||
      !std::equal(fresh.listen.begin(), fresh.listen.end(), old.listen.begin(),
                  [](const auto& a, const auto& b) { return a.str() == b.str(); }))
    log::warn(
        "reload: listen, loops, store_connections, auth_check_*, queue_* and backlog_check_interval take effect only "
        "after a restart");
  fresh.listen = old.listen;
  fresh.loops = old.loops;
  fresh.store_connections = old.store_connections;
  fresh.auth_check_threads = old.auth_check_threads;
  fresh.auth_check_queue = old.auth_check_queue;
  fresh.queue_max_size = old.queue_max_size;
  fresh.queue_size_check_interval = old.queue_size_check_interval;
  fresh.backlog_check_interval = old.backlog_check_interval;
  backlog_watch_->set_threshold(fresh.backlog_quotas.threshold());
  settings_ = LoopSettings{.config = std::make_shared<const ListenerConfig>(std::move(fresh)), .tls = std::move(tls)};
  for (auto& loop : loops_) loop->post_config(settings_);
  log::info("configuration reloaded{}", settings_.tls ? " (TLS certificate reloaded)" : "");
}

}  // namespace wsmtp::listener
