// The thread behind QueueWatch and BacklogWatch: every interval it calls
// `sample` with a Store of its own (made by the factory, made again after any
// failure), so that sessions read the result without a database round trip.
// A failed sample is logged once until one succeeds again, and the caller's
// last result stays in force: a database that cannot answer cannot take mail
// either, and the store workers' own errors (451) say so.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store.h"

namespace wsmtp::listener {

class StoreSampler {
 public:
  using StoreFactory = std::function<std::unique_ptr<common::Store>()>;
  // Gets the thread's Store, connecting first if need be; a sample that needs
  // no database (BacklogWatch with every quota off) never calls it.
  using StoreRef = std::function<common::Store&()>;
  using Sample = std::function<void(const StoreRef&)>;

  // what: the subject of the log lines ("queue size", "backlog"). Starts the
  // thread at once; never throws for a database that is down.
  StoreSampler(std::string what, StoreFactory factory, std::chrono::milliseconds interval, Sample sample);
  ~StoreSampler();  // stop()
  StoreSampler(const StoreSampler&) = delete;
  StoreSampler& operator=(const StoreSampler&) = delete;

  // Ends the thread; idempotent.
  void stop();

 private:
  void run();
  void sample_once();

  const std::string what_;
  StoreFactory factory_;
  const std::chrono::milliseconds interval_;
  Sample sample_;
  std::unique_ptr<common::Store> store_;  // the thread's only
  bool failing_ = false;                  // the thread's only
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;     // last: started once everything above exists
};

}  // namespace wsmtp::listener
