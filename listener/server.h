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
#include "config/common_config.h"
#include "handles.h"
#include "loop.h"
#include "placement.h"
#include "queue_watch.h"
#include "shard_probe.h"
#include "shard_stores.h"
#include "unique_fd.h"

namespace wsmtp::listener {

// How the server gets its Stores (main.cpp: PostgreSQL; tests: fakes).
struct StoreMakers {
  using Lost = std::function<void(const ShardFault&)>;
  // A Store on shard `index` (of DatabaseConfig::shards) that calls lost (may
  // be empty) each time it finds its shard failing.
  std::function<std::unique_ptr<common::Store>(std::size_t index, Lost lost)> shard;
  // A Store on the directory (recipient checks, AUTH), when no shard's
  // database is the directory's.
  std::function<std::unique_ptr<common::Store>()> directory;
  // The health check of shard `index` (ShardProbe::Check).
  std::function<ShardFault(std::size_t index)> check;
};

class Server {
 public:
  // Reads and validates the whole configuration again; throws on any error.
  using Reload = std::function<ListenerConfig()>;

  // Builds the TLS context (if configured), the placement over database's
  // shards with a health probe per shard (two or more shards), per shard a
  // pool of config.store_connections store workers (plus one for the
  // directory unless a shard's database is the directory's) and config.loops
  // loops sharing them. Throws on failure.
  Server(ListenerConfig config, const common::DatabaseConfig& database, StoreMakers makers, Reload reload);
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
  std::unique_ptr<Placement> placement_;             // read by sessions, stores, watches and probes; outlives all
  std::vector<std::unique_ptr<ShardProbe>> probes_;  // one per shard (none for a lone shard); outlive the stores
  QueueIdReserve auth_ids_;                          // unused: AUTH takes no queue ids
  std::unique_ptr<QueueWatch> queue_watch_;          // feeds the placement's flag every session reads
  std::unique_ptr<BacklogWatch> backlog_watch_;      // its snapshot is read by every session; outlives the loops
  std::vector<std::unique_ptr<Loop>> loops_;
  std::unique_ptr<ShardStores> stores_;                 // after loops_: stopped and destroyed before them
  std::unique_ptr<StoreWorkerPool> auth_pool_;          // the same, for AUTH password checks
  std::vector<std::vector<common::UniqueFd>> sockets_;  // per loop, until run() hands them over
  std::vector<std::thread> threads_;
  std::atomic<int> running_loops_{0};
  bool stopping_ = false;
};

}  // namespace wsmtp::listener
