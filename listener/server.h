// wsmtp's process-level structure: binds the listening sockets, runs one Loop per
// configured loop on its own thread (never a thread per client), and handles
// signals on the main thread: SIGTERM/SIGINT shut down gracefully (a second one
// stops at once), SIGHUP reloads the configuration and TLS certificate without
// dropping sessions. It knows no SMTP and no SQL.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "backlog_watch.h"
#include "client_limits.h"
#include "config.h"
#include "handles.h"
#include "loop.h"
#include "queue_watch.h"
#include "unique_fd.h"

namespace wsmtp::listener {

class Server {
 public:
  // Reads and validates the whole configuration again; throws on any error.
  using Reload = std::function<ListenerConfig()>;

  // Builds the TLS context (if configured), one pool of config.store_connections
  // store workers and config.loops loops sharing it. Throws on failure.
  Server(ListenerConfig config, StoreWorkerPool::StoreFactory factory, Reload reload);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every address in config.listen, once per loop with SO_REUSEPORT so the
  // kernel spreads connections over the loops; IPv6 sockets are IPv6-only so
  // 0.0.0.0 and [::] can both be listed. Throws std::runtime_error naming the
  // address and the system error.
  void bind();
  // Runs the loops until they have all stopped after SIGTERM/SIGINT.
  void run();

 private:
  static void signal_cb(evutil_socket_t, short, void* self) noexcept;
  void on_signal(int signal);
  void reload();

  LoopSettings settings_;
  Reload reload_;
  ClientLimits limits_;
  common::EventBasePtr signal_base_;
  common::EventPtr sigterm_, sigint_, sighup_;
  QueueIdReserve queue_ids_;                     // shared by the loops and the pool; outlives both
  std::unique_ptr<QueueWatch> queue_watch_;      // its flag is read by every session; outlives the loops
  std::unique_ptr<BacklogWatch> backlog_watch_;  // the same, for its snapshot
  std::vector<std::unique_ptr<Loop>> loops_;
  std::unique_ptr<StoreWorkerPool> pool_;               // after loops_: stopped and destroyed before them
  std::unique_ptr<StoreWorkerPool> auth_pool_;          // the same, for AUTH password checks
  std::vector<std::vector<common::UniqueFd>> sockets_;  // per loop, until run() hands them over
  std::vector<std::thread> threads_;
  std::atomic<int> running_loops_{0};
  bool stopping_ = false;
};

}  // namespace wsmtp::listener
