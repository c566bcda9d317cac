// One pool of threads for the whole listener process, shared by every event
// loop: the threads run the sessions' StoreOps on blocking Stores and post each
// result back to the loop that submitted it. It knows nothing of SMTP or of
// sessions beyond an opaque id. The listener runs two: one for the database
// work of every session, and a small bounded one for AUTH (argon2id is slow and
// CPU-bound on purpose, and a burst of it must not delay RCPTs and commits).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "handles.h"
#include "queue_ids.h"
#include "store.h"
#include "store_op.h"

namespace wsmtp::listener {

class StoreWorkerPool {
 public:
  using StoreFactory = std::function<std::unique_ptr<common::Store>()>;
  // Runs on the submitting loop's thread, once per submitted op, in completion order.
  using CompletionHandler = std::function<void(std::uint64_t session_id, StoreResult result)>;

  // Starts `threads` workers, each creating its own Store through factory (in its
  // own thread; a failing factory fails that worker's jobs and is retried on the
  // next job). The queue id ops take from and refill ids, which must outlive the pool.
  // max_queued bounds try_submit's queue (jobs not yet started); 0: unbounded.
  StoreWorkerPool(StoreFactory factory, int threads, QueueIdReserve& ids, std::size_t max_queued = 0);
  ~StoreWorkerPool();  // stop()
  StoreWorkerPool(const StoreWorkerPool&) = delete;
  StoreWorkerPool& operator=(const StoreWorkerPool&) = delete;

  // Registers an event loop; returns the endpoint its ops are submitted with.
  // Results are handed to on_done on base's thread. base must have been created
  // after evthread_use_pthreads() and must outlive stop(). Thread-safe.
  int attach(event_base* base, CompletionHandler on_done);

  // Queues op. Thread: the endpoint's loop thread. session_id is returned with
  // the result; the handler must treat an id it no longer knows as "drop the result".
  void submit(int endpoint, std::uint64_t session_id, StoreOp op);
  // Like submit, but refuses (returns false, and op is dropped) when max_queued
  // jobs are already waiting for a thread: the caller answers "busy" at once
  // rather than letting the queue, and every client's wait, grow without bound.
  bool try_submit(int endpoint, std::uint64_t session_id, StoreOp op);
  // Runs the jobs already queued, then joins the threads and releases the
  // endpoints' events. Results that arrive after a loop stopped are not
  // delivered. Idempotent; call before any attached base is freed.
  void stop();
  // Fails every job of this endpoint that has not started, except aborts
  // (which only ever remove state-0 rows): used when the loop's shutdown grace
  // period is over, so no message is committed after its client was given up.
  void cancel_queued(int endpoint);
  // The same for every endpoint's jobs, failed with `why`: used when the
  // pool's database stops answering, so the sessions waiting for it get 451
  // at once instead of after the operation ahead of them has given up.
  void fail_queued(const std::string& why);

  // At most this many StoreWhole ops share one transaction (group commit).
  static constexpr std::size_t kMaxBatch = 64;

 private:
  struct Job {
    int endpoint;
    std::uint64_t session_id;
    StoreOp op;
  };
  struct Done {
    std::uint64_t session_id;
    StoreResult result;
  };
  struct Endpoint {
    StoreWorkerPool* pool;
    CompletionHandler on_done;
    common::EventPtr done_event;
    std::deque<Done> done;  // guarded by the pool's mutex_
  };

  // Takes out the jobs not started (of one endpoint, or all: -1) except
  // aborts and fails each with why.
  void fail_waiting(int endpoint, const std::string& why);
  void worker_main();
  // Takes the next job and, if it is a StoreWhole, every other queued StoreWhole
  // of any loop (up to kMaxBatch) with it, as the one group commit running.
  // Called with mutex_ held.
  std::vector<Job> take_batch(bool& holds_commit);
  bool runnable() const;  // with mutex_ held
  void run_batch(std::unique_ptr<common::Store>& store, std::vector<Job>& batch);
  void post(int endpoint, std::uint64_t session_id, StoreResult result);
  static void on_done_event(evutil_socket_t, short, void* endpoint) noexcept;
  void deliver_done(Endpoint& endpoint);

  StoreFactory factory_;
  QueueIdReserve& ids_;
  const std::size_t max_queued_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;  // guarded by mutex_ (the vector; entries are stable)
  bool committing_ = false;                           // a group commit is running (guarded by mutex_)
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace wsmtp::listener
