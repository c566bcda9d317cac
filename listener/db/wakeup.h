// Post-commit wake-ups (schema/009_commit_concurrency.sql). A NOTIFY inside a
// message transaction serialises every committing transaction in the cluster
// on one lock held through its WAL flush; a program on a hot path instead
// defers the wake-up for its session and sends it after each commit, in its
// own transaction with asynchronous commit, which holds that lock only briefly.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// From now on the schema trigger does not NOTIFY for transactions on conn; the
// caller must call send_wakeup() after committing work that other stages wait
// for. Session-level: a reconnected connection needs it again.
void defer_wakeups(pqxx::connection_base& conn);

// NOTIFYs channel (kRouteChannel, kDeliverChannel) in a transaction of its own
// whose commit does not wait for a WAL flush: a notification is only a hint
// (workers also poll), so losing it in a crash costs one poll interval at most.
// Must be called outside any transaction on conn.
void send_wakeup(pqxx::connection_base& conn, const char* channel);

// Sends wake-ups from a thread with its own connection, so the commit that
// asked for one is answered without waiting for it, and wake-ups asked for
// while one is being sent are merged into the next (a busy listener's many
// commits per second become as many NOTIFYs as the database can take, no more).
// Reconnects with backoff; while the database is unreachable requests are
// merged and sent when it is back.
class WakeupSender {
 public:
  explicit WakeupSender(std::string conninfo);
  ~WakeupSender();  // sends what was asked for, then stops
  WakeupSender(const WakeupSender&) = delete;
  WakeupSender& operator=(const WakeupSender&) = delete;

  // Thread-safe, never blocks on the database. channel: kRouteChannel or kDeliverChannel.
  void request(const char* channel);

 private:
  void run();

  std::string conninfo_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::set<std::string> pending_;  // guarded by mutex_
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace wsmtp::common::pg
