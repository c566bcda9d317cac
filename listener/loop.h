// One event loop of wsmtp, run on its own thread: its listening sockets (bound
// by Server, shared with the other loops through SO_REUSEPORT), one bufferevent
// per client (wrapped in TLS after STARTTLS), its endpoint in the shared store pool, timeouts,
// deadlines, the tarpit and shutdown. It moves bytes between sockets and Sessions and store
// results back into them; it knows nothing of SMTP commands and never touches
// the database. Other threads talk to it only through post_config() and
// post_shutdown(), which are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "client_limits.h"
#include "config.h"
#include "deadlines.h"
#include "handles.h"
#include "milter/chain.h"
#include "recipient_cache.h"
#include "backlog_watch.h"
#include "session.h"
#include "shard_stores.h"
#include "store_worker.h"
#include "unique_fd.h"

namespace wsmtp::listener {

// What every loop shares: the current configuration and TLS context. The
// shared_ptrs' co-owners are the Server, each Loop and (for the config) each
// Session started under it, so a reload never pulls either from under a session.
struct LoopSettings {
  std::shared_ptr<const ListenerConfig> config;
  std::shared_ptr<SSL_CTX> tls;  // null when STARTTLS is not configured
};

class Loop {
 public:
  // Attaches to stores (every shard's pool and the directory's) and auth_pool
  // (VerifyUser ops only, bounded), shared with the other loops like limits,
  // queue_full (set while every shard is full) and backlogs; all must outlive
  // the loop, and every pool must be stopped before the loop is destroyed.
  Loop(LoopSettings settings, ClientLimits& limits, ShardStores& stores, StoreWorkerPool& auth_pool,
       const std::atomic<bool>& queue_full, const BacklogWatch& backlogs, int index);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Serves on these listening sockets (already bound and listening) until
  // shutdown. Call once, from the loop's thread.
  void run(std::vector<common::UniqueFd> listeners);

  // Thread-safe: takes effect for new sessions between events.
  void post_config(LoopSettings settings);
  // Thread-safe: graceful (stop accepting, let sessions finish within
  // shutdown_grace) the first time, immediate the second.
  void post_shutdown();

 private:
  struct Connection {
    Connection(Loop* owner, std::uint64_t number, std::string ip, common::BufferEventPtr socket, Session s, Deadlines d)
        : loop(owner),
          id(number),
          client_ip(std::move(ip)),
          bev(std::move(socket)),
          session(std::move(s)),
          deadlines(d) {}
    Loop* loop;
    std::uint64_t id;
    std::string client_ip;
    std::string limit_key;       // what ClientLimits counts this client under (limit_key())
    common::BufferEventPtr bev;  // null once the socket is closed
    Session session;
    Deadlines deadlines;
    common::EventPtr deadline_timer;  // created on first use
    // When deadline_timer fires; max() while it is not armed.
    Deadlines::Clock::time_point deadline_armed = Deadlines::Clock::time_point::max();
    common::EventPtr tarpit;  // created on first use
    common::EventPtr linger;  // polls a TLS connection's unsent bytes before closing
    std::string held_output;  // replies delayed by the tarpit
    bool tarpitted = false;
    bool op_in_flight = false;
    bool data_timeouts = false;      // which timeouts are set on bev
    bool paused_for_output = false;  // the client is not reading our replies
    std::string checking_recipient;  // lookup key of a CheckRecipient at the store
    bool verifying_user = false;     // a VerifyUser is at the store
    // The session's milters ([listener] milters), null without. Declared last:
    // destroyed first, so no milter callback outlives the session.
    std::unique_ptr<milter::Chain> milters;
    bool paused_for_milters = false;  // the milters have not taken what they were given
  };

  static void accept_cb(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* self) noexcept;
  static void accept_error_cb(evconnlistener*, void* self) noexcept;
  static void read_cb(bufferevent*, void* conn) noexcept;
  static void write_cb(bufferevent*, void* conn) noexcept;
  static void event_cb(bufferevent*, short events, void* conn) noexcept;
  static void control_cb(evutil_socket_t, short, void* self) noexcept;
  static void resume_accept_cb(evutil_socket_t, short, void* self) noexcept;
  static void grace_over_cb(evutil_socket_t, short, void* self) noexcept;
  static void tarpit_cb(evutil_socket_t, short, void* conn) noexcept;
  static void deadline_cb(evutil_socket_t, short, void* conn) noexcept;
  static void linger_cb(evutil_socket_t, short, void* conn) noexcept;
  static void cached_answers_cb(evutil_socket_t, short, void* self) noexcept;

  void accept(evutil_socket_t fd, const sockaddr* addr);
  bool admitted(evutil_socket_t fd, const IpAddress& client, const std::string& ip, const std::string& key);
  void process_input(Connection& c);
  bool feed_once(Connection& c);
  void emit(Connection& c);
  void after_activity(Connection& c);
  Deadlines::Clock::time_point update_deadlines(Connection& c);
  void check_deadlines(Connection& c);
  void arm_deadline(Connection& c);
  void start_tls(Connection& c);
  void on_tls_event(Connection& c, short events);
  void on_store_done(std::uint64_t id, StoreResult result);
  void pass_milter_events(Connection& c);
  void on_milter_verdict(std::uint64_t id, milter::Verdict verdict);
  void on_milter_drained(std::uint64_t id);
  bool answer_without_store(Connection& c, const StoreOp& op);
  void submit(Connection& c, StoreOp op);
  void post_answer(Connection& c, StoreResult result);
  void close_socket(Connection& c);
  void fail_connection(Connection& c, const char* where, const std::exception& e) noexcept;
  void handle_control();
  void begin_shutdown();
  void grace_over();
  void forget_if_done(Connection& c);
  void close_when_sent(Connection& c);

  int index_;
  LoopSettings settings_;
  ClientLimits& limits_;
  std::string identity_;
  common::EventBasePtr base_;
  ShardStores& stores_;
  StoreWorkerPool& auth_pool_;
  const std::atomic<bool>& queue_full_;
  const BacklogWatch& backlogs_;
  ShardStores::Endpoints endpoints_;  // ours in stores_
  int auth_endpoint_ = -1;            // ours in auth_pool_
  std::vector<common::ListenerPtr> listeners_;
  common::EventPtr control_, resume_accept_, grace_timer_;
  RecipientCache recipient_cache_;
  // Answers given without the store (recipient_cache_, blocked AUTH), handed to their sessions from the event
  // loop like the store's (never from inside after_activity, which may be
  // running on behalf of the same connection).
  common::EventPtr cached_answers_event_;
  std::deque<std::pair<std::uint64_t, StoreResult>> cached_answers_;

  std::mutex control_mutex_;
  std::unique_ptr<LoopSettings> posted_settings_;  // guarded by control_mutex_
  int posted_shutdowns_ = 0;                       // guarded by control_mutex_
  int shutdowns_seen_ = 0;

  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::uint64_t next_id_ = 1;  // 0 is "no session" for fire-and-forget ops
  bool shutting_down_ = false;
  bool grace_over_ = false;
};

}  // namespace wsmtp::listener
