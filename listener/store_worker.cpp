// Why threads with their own connections, not libpq's asynchronous API on the loop:
// libpqxx 6.4 (our one PostgreSQL layer, STYLE §3) only offers blocking calls, and
// a libpq pipeline driven by the loop would put a second, hand-written PostgreSQL
// client into the listener. A few threads, each owning one connection through the
// ordinary Store, keep the SQL in common/pg/, bound the listener's connections to
// store_connections however many clients are connected, and never block the loop:
// a slow or dead database parks the sessions that need it (their sockets stop
// being read) while every other session carries on. Jobs go in through a
// mutex-protected queue; results come back through an event activated from the
// worker thread (libevent's pthreads locking makes event_active() thread-safe).
#include "store_worker.h"

#include <event2/event.h>
#include <event2/thread.h>

#include <exception>

#include "log.h"

namespace wsmtp::listener {

StoreWorkerPool::StoreWorkerPool(event_base* base, StoreFactory factory, int threads, CompletionHandler on_done)
    : factory_(std::move(factory)), on_done_(std::move(on_done)) {
  done_event_.reset(event_new(base, -1, 0, &StoreWorkerPool::on_done_event, this));
  if (!done_event_) throw std::runtime_error("event_new failed for the store completion event");
  threads_.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { worker_main(); });
}

StoreWorkerPool::~StoreWorkerPool() { stop(); }

void StoreWorkerPool::submit(std::uint64_t session_id, StoreOp op) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(Job{session_id, std::move(op)});
  }
  wake_.notify_one();
}

void StoreWorkerPool::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void StoreWorkerPool::worker_main() {
  std::unique_ptr<common::Store> store;
  for (;;) {
    Job job{};
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      // Queued jobs still run when stopping: they are the aborts of closing sessions.
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    StoreResult result;
    try {
      if (!store) store = factory_();
    } catch (const std::exception& e) {
      result.error = e.what();
    }
    if (store) result = run_store_op(*store, job.op);
    if (!result.ok) log::error("{} failed: {}", describe(job.op), result.error);
    {
      std::lock_guard lock(mutex_);
      done_.push_back(Done{job.session_id, std::move(result)});
    }
    event_active(done_event_.get(), EV_READ, 0);
  }
}

void StoreWorkerPool::on_done_event(evutil_socket_t, short, void* self) noexcept {
  try {
    static_cast<StoreWorkerPool*>(self)->deliver_done();
  } catch (const std::exception& e) {
    // The handler contains its own per-session failures; reaching here is our bug.
    log::fatal("store completion handler threw: {}", e.what());
  }
}

void StoreWorkerPool::deliver_done() {
  std::deque<Done> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(done_);
  }
  for (auto& d : batch) on_done_(d.session_id, std::move(d.result));
}

}  // namespace wsmtp::listener
