// A small pool of threads that run the sessions' StoreOps on blocking Stores and
// post each result back to the event loop thread. It knows nothing of SMTP or of
// sessions beyond an opaque id.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "commit_gate.h"
#include "handles.h"
#include "store.h"
#include "store_op.h"

namespace wsmtp::listener {

class StoreWorkerPool {
 public:
  using StoreFactory = std::function<std::unique_ptr<common::Store>()>;
  // Runs on the loop thread, once per submitted op, in completion order.
  using CompletionHandler = std::function<void(std::uint64_t session_id, StoreResult result)>;

  // Starts `threads` workers, each creating its own Store through factory (in its
  // own thread; a failing factory fails that worker's jobs and is retried on the
  // next job). base must have been created after evthread_use_pthreads().
  // gate is shared by the pools of all loops: one group commit at a time.
  StoreWorkerPool(event_base* base, StoreFactory factory, int threads, CompletionHandler on_done,
                  std::shared_ptr<CommitGate> gate);
  ~StoreWorkerPool();
  StoreWorkerPool(const StoreWorkerPool&) = delete;
  StoreWorkerPool& operator=(const StoreWorkerPool&) = delete;

  // Queues op. Thread: loop thread only. session_id is returned with the result;
  // the handler must treat an id it no longer knows as "drop the result".
  void submit(std::uint64_t session_id, StoreOp op);
  // Runs the jobs already queued, then joins the threads. Results that arrive
  // after the loop stopped are not delivered. Idempotent.
  void stop();
  // Fails every queued job that has not started, except aborts (which only ever
  // remove state-0 rows): used when the shutdown grace period is over, so no
  // message is committed after its client was given up.
  void cancel_queued();

  // At most this many StoreWhole ops share one transaction (group commit).
  static constexpr std::size_t kMaxBatch = 64;

 private:
  struct Job {
    std::uint64_t session_id;
    StoreOp op;
  };
  struct Done {
    std::uint64_t session_id;
    StoreResult result;
  };

  void worker_main();
  // Takes the next job and, if it is a StoreWhole, every other queued StoreWhole
  // (up to kMaxBatch) with it. Called with mutex_ held.
  // Sets holds_gate when the batch is a group commit that took the gate.
  std::vector<Job> take_batch(bool& holds_gate);
  bool runnable() const;  // with mutex_ held
  void run_batch(std::unique_ptr<common::Store>& store, std::vector<Job>& batch);
  void post(std::uint64_t session_id, StoreResult result);
  static void on_done_event(evutil_socket_t, short, void* self) noexcept;
  void deliver_done();

  StoreFactory factory_;
  CompletionHandler on_done_;
  common::EventPtr done_event_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  std::deque<Done> done_;
  bool stopping_ = false;
  std::shared_ptr<CommitGate> gate_;
  std::uint64_t gate_token_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace wsmtp::listener
