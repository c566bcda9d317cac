#include "db/wakeup.h"

#include <chrono>
#include <string>

#include "log.h"
#include "pg/connection.h"

namespace wsmtp::common::pg {

void defer_wakeups(pqxx::connection_base& conn) {
  pqxx::nontransaction tx(conn);
  tx.exec0("SET wsmtp.deferred_wakeup = on");
}

void send_wakeup(pqxx::connection_base& conn, const char* channel) {
  // One round trip: the whole transaction goes as one simple-query string.
  // channel is one of our constants, never input, so it is quoted, not escaped.
  pqxx::nontransaction tx(conn);
  tx.exec0(std::string("BEGIN; SET LOCAL synchronous_commit = off; NOTIFY ") + channel + "; COMMIT");
}

WakeupSender::WakeupSender(std::string conninfo) : conninfo_(std::move(conninfo)) {
  thread_ = std::thread([this] { run(); });
}

WakeupSender::~WakeupSender() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void WakeupSender::request(const char* channel) {
  {
    std::lock_guard lock(mutex_);
    pending_.insert(channel);
  }
  wake_.notify_one();
}

void WakeupSender::run() {
  std::unique_ptr<pqxx::connection> conn;
  for (;;) {
    std::set<std::string> channels;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
      if (pending_.empty()) return;
      channels.swap(pending_);
    }
    try {
      if (!conn || !conn->is_open()) conn = connect_with_backoff(conninfo_, stopping_);
      if (!conn) return;  // stopping while the database is unreachable
      for (const auto& channel : channels) send_wakeup(*conn, channel.c_str());
    } catch (const std::exception& e) {
      // Workers poll as well; the next request tries again on a new connection.
      log::warn("wake-up not sent ({}); workers will find the work by polling", e.what());
      conn.reset();
    }
  }
}

}  // namespace wsmtp::common::pg
