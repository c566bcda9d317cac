// The health of one queue shard over time: a store that loses its shard (a
// connection error, or the database turned out to be another shard) takes it
// out of the rotation at once through lost(); this probe's thread then checks
// the shard (connect, SELECT 1, its identity) at most once per pause and puts
// it back when it answers. It also checks once at start, so a misconfigured
// shard is out of rotation within milliseconds. On leaving, the work queued
// for the shard is failed at once (on_leave), so those clients get 451 now,
// not after every earlier operation on the shard has timed out. One thread per shard: a shard whose checks hang
// delays no other shard's return. It knows no SQL (the check is handed in).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "placement.h"

namespace wsmtp::listener {

// What a check or a failing store found out.
struct ShardFault {
  std::string why;              // for the log; empty: the shard answers
  bool wrong_database = false;  // the database is not this shard (logged as an error)
};

class ShardProbe {
 public:
  // Checks the shard; returns a ShardFault with an empty why when it answers
  // and is the configured shard. Never throws (a throw is counted as a fault).
  using Check = std::function<ShardFault()>;
  // Runs once each time the shard leaves the rotation, on the thread that
  // found it failing, with no lock of the probe held.
  using OnLeave = std::function<void()>;

  // placement must outlive the probe. Nothing runs before start().
  ShardProbe(Placement& placement, std::size_t index, Check check, std::chrono::milliseconds pause, OnLeave on_leave);
  ~ShardProbe();  // stop()
  ShardProbe(const ShardProbe&) = delete;
  ShardProbe& operator=(const ShardProbe&) = delete;

  // Starts the thread, which checks the shard at once.
  void start();

  // A store found its shard failing: out of the rotation now, checked again
  // within a pause. Thread-safe, never blocks on the database.
  void lost(const ShardFault& fault);

  // Ends the thread; idempotent.
  void stop();

  // Checks made so far (tests).
  int checks() const;

  // Between two checks of a shard out of rotation: new mail goes elsewhere at
  // once, and a shard that is back takes mail again within about a second.
  static constexpr std::chrono::milliseconds kPause{1000};

 private:
  void run();
  bool leave(const ShardFault& fault);  // with mutex_ held; true: it was in rotation
  void check_once();

  Placement& placement_;
  const std::size_t index_;
  Check check_;
  const std::chrono::milliseconds pause_;
  OnLeave on_leave_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool out_ = false;       // guarded by mutex_: waiting for a good check
  std::string last_why_;   // guarded by mutex_: the fault last logged
  int checks_ = 0;         // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;     // last: started once everything above exists
};

}  // namespace wsmtp::listener
