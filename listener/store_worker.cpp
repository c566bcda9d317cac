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

#include <algorithm>
#include <exception>
#include <stdexcept>

#include "log.h"

namespace wsmtp::listener {

// One pool for all loops, and one group commit at a time in it: while a batch
// of whole messages waits for its WAL flush, the messages of every loop pile up
// for the next one, so each flush covers as many messages as possible. With a
// pool per loop (and a lock between them for the commits), the loops' batches
// were split: measured on 2 cores shared with PostgreSQL, router and
// deliverer (10,000 messages of 4 KiB over 20 sessions), 2 loops made ~1,440
// commits where 1 loop made ~1,040, and the burst took 10.2 s instead of 8.7 s.
StoreWorkerPool::StoreWorkerPool(StoreFactory factory, int threads, QueueIdReserve& ids, std::size_t max_queued)
    : factory_(std::move(factory)), ids_(ids), max_queued_(max_queued) {
  threads_.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { worker_main(); });
}

StoreWorkerPool::~StoreWorkerPool() { stop(); }

int StoreWorkerPool::attach(event_base* base, CompletionHandler on_done) {
  std::lock_guard lock(mutex_);
  auto endpoint = std::make_unique<Endpoint>();
  endpoint->pool = this;
  endpoint->on_done = std::move(on_done);
  endpoint->done_event.reset(event_new(base, -1, 0, &StoreWorkerPool::on_done_event, endpoint.get()));
  if (!endpoint->done_event) throw std::runtime_error("event_new failed for the store completion event");
  endpoints_.push_back(std::move(endpoint));
  return static_cast<int>(endpoints_.size()) - 1;
}

void StoreWorkerPool::submit(int endpoint, std::uint64_t session_id, StoreOp op) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(Job{endpoint, session_id, std::move(op)});
  }
  wake_.notify_one();
}

bool StoreWorkerPool::try_submit(int endpoint, std::uint64_t session_id, StoreOp op) {
  {
    std::lock_guard lock(mutex_);
    if (max_queued_ > 0 && jobs_.size() >= max_queued_) return false;
    jobs_.push_back(Job{endpoint, session_id, std::move(op)});
  }
  wake_.notify_one();
  return true;
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
  std::lock_guard lock(mutex_);
  for (auto& endpoint : endpoints_) endpoint->done_event.reset();  // before their bases go
}

void StoreWorkerPool::cancel_queued(int endpoint) { fail_waiting(endpoint, "cancelled: shutting down"); }

void StoreWorkerPool::fail_queued(const std::string& why) { fail_waiting(-1, why); }

void StoreWorkerPool::fail_waiting(int endpoint, const std::string& why) {
  std::deque<Job> cancelled;
  {
    std::lock_guard lock(mutex_);
    std::deque<Job> kept;
    for (auto& job : jobs_)
      ((endpoint < 0 || job.endpoint == endpoint) && !std::holds_alternative<AbortMessage>(job.op) ? cancelled : kept)
          .push_back(std::move(job));
    jobs_.swap(kept);
  }
  for (auto& job : cancelled) {
    StoreResult result;
    result.error = why;
    post(job.endpoint, job.session_id, std::move(result));
  }
}

bool StoreWorkerPool::runnable() const {
  for (const auto& job : jobs_)
    if (!std::holds_alternative<StoreWhole>(job.op) || !committing_ || stopping_) return true;
  return false;
}

// Whole messages are committed one batch at a time, all that are queued (from
// every loop) in one transaction; other ops run on the other workers meanwhile.
// When stopping, the running commit is not waited for: closing sessions' last
// commits must not queue behind it.
std::vector<StoreWorkerPool::Job> StoreWorkerPool::take_batch(bool& holds_commit) {
  std::vector<Job> batch;
  holds_commit = false;
  const bool may_write = stopping_ || !committing_;
  auto first = std::find_if(jobs_.begin(), jobs_.end(),
                            [&](const Job& j) { return !std::holds_alternative<StoreWhole>(j.op) || may_write; });
  if (first == jobs_.end()) return batch;
  batch.push_back(std::move(*first));
  jobs_.erase(first);
  if (!std::holds_alternative<StoreWhole>(batch.front().op)) return batch;
  if (!stopping_) holds_commit = committing_ = true;
  // Sessions have one op each outstanding, so taking later StoreWholes ahead of
  // other sessions' ops reorders nothing that depends on order.
  for (auto it = jobs_.begin(); it != jobs_.end() && batch.size() < kMaxBatch;) {
    if (std::holds_alternative<StoreWhole>(it->op)) {
      batch.push_back(std::move(*it));
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  return batch;
}

void StoreWorkerPool::worker_main() {
  std::unique_ptr<common::Store> store;
  for (;;) {
    std::vector<Job> batch;
    bool holds_commit = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || runnable(); });
      // Queued jobs still run when stopping: they are the aborts of closing sessions.
      if (jobs_.empty()) return;
      batch = take_batch(holds_commit);
      if (batch.empty()) continue;
    }
    run_batch(store, batch);
    if (holds_commit) {
      {
        std::lock_guard lock(mutex_);
        committing_ = false;
      }
      wake_.notify_all();  // workers that saw only whole messages queued
    }
  }
}

// Several whole messages go into one transaction: one commit, one WAL flush for
// all of them. If that fails each is retried alone, so one bad message cannot
// cost the others their acceptance.
void StoreWorkerPool::run_batch(std::unique_ptr<common::Store>& store, std::vector<Job>& batch) {
  std::string connect_error;
  try {
    if (!store) store = factory_();
  } catch (const std::exception& e) {
    connect_error = e.what();
  }
  if (store && batch.size() > 1) {
    std::vector<common::CompleteMessage> messages;
    messages.reserve(batch.size());
    for (auto& job : batch) messages.push_back(std::move(std::get<StoreWhole>(job.op).message));
    try {
      store->store_messages(messages);
      log::debug("group commit: {} messages in one transaction", batch.size());
      for (auto& job : batch) {
        StoreResult result;
        result.ok = true;
        post(job.endpoint, job.session_id, std::move(result));
      }
      return;
    } catch (const std::exception& e) {
      log::warn("group commit of {} messages failed, storing them one by one: {}", batch.size(), e.what());
    }
    for (std::size_t i = 0; i < batch.size(); ++i) std::get<StoreWhole>(batch[i].op).message = std::move(messages[i]);
  }
  for (auto& job : batch) {
    StoreResult result;
    result.error = connect_error;
    if (store) result = run_store_op(*store, job.op, &ids_);
    if (!result.ok) log::error("{} failed: {}", describe(job.op), result.error);
    post(job.endpoint, job.session_id, std::move(result));
  }
}

void StoreWorkerPool::post(int endpoint, std::uint64_t session_id, StoreResult result) {
  event* done_event = nullptr;
  {
    std::lock_guard lock(mutex_);
    auto& e = *endpoints_.at(static_cast<std::size_t>(endpoint));
    e.done.push_back(Done{session_id, std::move(result)});
    done_event = e.done_event.get();  // released only by stop(), after the workers are joined
  }
  // Thread-safe with libevent's pthreads locking.
  if (done_event) event_active(done_event, EV_READ, 0);
}

void StoreWorkerPool::on_done_event(evutil_socket_t, short, void* endpoint) noexcept {
  auto* e = static_cast<Endpoint*>(endpoint);
  try {
    e->pool->deliver_done(*e);
  } catch (const std::exception& ex) {
    // The handler contains its own per-session failures; reaching here is our bug.
    log::fatal("store completion handler threw: {}", ex.what());
  }
}

void StoreWorkerPool::deliver_done(Endpoint& endpoint) {
  std::deque<Done> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(endpoint.done);
  }
  for (auto& d : batch) endpoint.on_done(d.session_id, std::move(d.result));
}

}  // namespace wsmtp::listener
