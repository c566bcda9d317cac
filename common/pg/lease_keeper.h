// Keeps a worker's leases alive while it works on them (DESIGN.md: a lease is
// renewed while its worker is still working; only a worker that stopped lets
// it expire). A thread of its own with a connection of its own renews them, so
// a worker blocked for minutes in one relay conversation keeps its claims, and
// tells the worker what it found (held, lost, deleted) so that it starts
// nothing more for such a message. Knows nothing of what the work is.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "msg_state.h"
#include "pg/transitions.h"

namespace wsmtp::common::pg {

struct LeaseKeeperOptions {
  std::string conninfo;
  std::chrono::seconds lease_time{300};
  // Leases are renewed only while the worker reported progress within this
  // long: the longest a healthy worker can wait on one step of its work (its
  // own timeouts). See lease_keeper.cpp for why.
  std::chrono::seconds stall_limit{300};
};

class LeaseKeeper {
 public:
  // Starts the renewal thread; connects lazily, when there is something to renew.
  explicit LeaseKeeper(LeaseKeeperOptions options);
  // Stops the thread: nothing is renewed after this returns.
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // The worker moved on (a reply arrived, a copy was written, a message was
  // routed). Cheap; any thread.
  void progress() noexcept;

  // The leases of one claimed batch, renewed while this object lives.
  class Kept {
   public:
    Kept(Kept&& other) noexcept;
    Kept& operator=(Kept&&) = delete;
    Kept(const Kept&) = delete;
    Kept& operator=(const Kept&) = delete;
    ~Kept();
    // What the latest renewal found for msg_id: ours until a renewal said
    // otherwise (also for an id this batch does not hold).
    LeaseStatus status(std::int64_t msg_id) const;
    // The worker handed msg_id's lease back (record_routing_failure): it is
    // no longer renewed.
    void forget(std::int64_t msg_id);

   private:
    friend class LeaseKeeper;
    Kept(LeaseKeeper* keeper, std::vector<std::int64_t> ids) : keeper_(keeper), ids_(std::move(ids)) {}
    LeaseKeeper* keeper_;
    std::vector<std::int64_t> ids_;
  };

  // Registers leases (all in `leased`: ROUTING or DELIVERING) until the result
  // is destroyed; the caller destroys it after the commit that finishes them.
  Kept keep(MsgState leased, const std::vector<Lease>& leases);

  // One renewal round now, in the calling thread (tests; the thread runs one
  // every min(lease_time / 3, 5 s)). Throws what renew_leases throws.
  void renew_now();

 private:
  struct Entry {
    MsgState leased;
    std::string token;
    LeaseStatus status = LeaseStatus::ours;
  };
  void run() noexcept;
  void round();
  bool stalled();
  void release(const std::vector<std::int64_t>& ids) noexcept;

  const LeaseKeeperOptions options_;
  const std::chrono::milliseconds tick_;
  std::atomic<std::chrono::steady_clock::rep> last_progress_;
  mutable std::mutex mutex_;  // guards entries_ and stopping_
  std::condition_variable wake_;
  bool stopping_ = false;
  std::map<std::int64_t, Entry> entries_;
  std::mutex round_mutex_;                  // one round at a time (the thread, renew_now)
  std::unique_ptr<pqxx::connection> conn_;  // under round_mutex_
  bool stall_logged_ = false;               // under round_mutex_
  std::thread thread_;                      // last: started once everything it uses exists
};

}  // namespace wsmtp::common::pg
