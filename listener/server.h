// The network side of wsmtp: one libevent loop, a listening socket, one
// bufferevent per client, connection limits, timeouts and shutdown. It moves
// bytes between sockets and Sessions and Store results from the worker pool back
// into them; it knows nothing of SMTP commands and never touches the database.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "config.h"
#include "handles.h"
#include "session.h"
#include "store_worker.h"

namespace wsmtp::listener {

class Server {
 public:
  // Creates the event loop and starts config.store_connections store workers.
  // config must outlive the server.
  Server(const ListenerConfig& config, StoreWorkerPool::StoreFactory factory);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on config.listen. Throws std::runtime_error naming the
  // address and the system error.
  void bind();
  // Serves clients until SIGTERM or SIGINT, then stops accepting, closes idle
  // sessions with 421, lets outstanding store ops finish (within a grace period)
  // and returns. A second signal stops at once.
  void run();

 private:
  struct Connection {
    Server* server;
    std::uint64_t id;
    std::string client_ip;
    common::BufferEventPtr bev;  // null once the socket is closed
    Session session;
    bool op_in_flight = false;
    bool data_timeouts = false;       // which timeouts are set on bev
    bool paused_for_output = false;   // the client is not reading our replies
  };

  static void accept_cb(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* self) noexcept;
  static void accept_error_cb(evconnlistener*, void* self) noexcept;
  static void read_cb(bufferevent*, void* conn) noexcept;
  static void write_cb(bufferevent*, void* conn) noexcept;
  static void event_cb(bufferevent*, short events, void* conn) noexcept;
  static void signal_cb(evutil_socket_t, short, void* self) noexcept;
  static void resume_accept_cb(evutil_socket_t, short, void* self) noexcept;
  static void grace_over_cb(evutil_socket_t, short, void* self) noexcept;

  void accept(evutil_socket_t fd, const sockaddr* addr);
  void process_input(Connection& c);
  void after_activity(Connection& c);
  void on_store_done(std::uint64_t id, StoreResult result);
  void close_socket(Connection& c);
  void fail_connection(Connection& c, const char* where, const std::exception& e) noexcept;
  void begin_shutdown();

  const ListenerConfig& config_;
  std::string identity_;
  common::EventBasePtr base_;
  std::unique_ptr<StoreWorkerPool> pool_;  // after base_: destroyed first
  common::ListenerPtr listener_;
  common::EventPtr sigterm_, sigint_, resume_accept_, grace_timer_;

  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::unordered_map<std::string, int> per_client_;  // open sockets per client address
  int open_sockets_ = 0;
  std::uint64_t next_id_ = 1;  // 0 is "no session" for fire-and-forget ops
  bool shutting_down_ = false;
};

}  // namespace wsmtp::listener
