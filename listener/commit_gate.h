// One group commit at a time in the whole listener process. Every event loop
// has its own store workers, but a batch of whole messages is committed by one
// worker at a time across all of them: while that commit waits for its WAL
// flush, the messages of every loop pile up for the next one, so each flush
// covers as many messages as possible. Measured on 2 cores shared with
// PostgreSQL (20 sessions, 4 KiB): one writer per loop with 2 loops accepted
// ~3,500-4,000 msg/s, one loop ~4,650; more, smaller commits cost the database
// more CPU per message than they save in waiting.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace wsmtp::listener {

class CommitGate {
 public:
  // True if the caller became the writer; it must call release() when done.
  bool try_acquire() { return !busy_.exchange(true); }
  bool busy() const { return busy_.load(); }
  // Ends the caller's commit and wakes every subscriber (each pool waiting to write).
  void release();

  // wake must not call into the gate. Returns a token for unsubscribe().
  std::uint64_t subscribe(std::function<void()> wake);
  void unsubscribe(std::uint64_t token);

 private:
  std::atomic<bool> busy_{false};
  std::mutex mutex_;  // guards waiters_; taken before any pool's own mutex
  std::map<std::uint64_t, std::function<void()>> waiters_;
  std::uint64_t next_token_ = 1;
};

}  // namespace wsmtp::listener
