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

#include "log.h"

namespace wsmtp::listener {

StoreWorkerPool::StoreWorkerPool(event_base* base, StoreFactory factory, int threads, CompletionHandler on_done,
                                 std::shared_ptr<CommitGate> gate)
    : factory_(std::move(factory)), on_done_(std::move(on_done)), gate_(std::move(gate)) {
  // Taking our mutex before notifying means a worker that saw the gate busy is
  // either still before its wait (and will see it free) or already waiting.
  gate_token_ = gate_->subscribe([this] {
    std::lock_guard lock(mutex_);
    wake_.notify_all();
  });
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
  if (gate_token_) gate_->unsubscribe(std::exchange(gate_token_, 0));
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void StoreWorkerPool::cancel_queued() {
  std::deque<Job> cancelled;
  {
    std::lock_guard lock(mutex_);
    std::deque<Job> kept;
    for (auto& job : jobs_) (std::holds_alternative<AbortMessage>(job.op) ? kept : cancelled).push_back(std::move(job));
    jobs_.swap(kept);
  }
  for (auto& job : cancelled) {
    StoreResult result;
    result.error = "cancelled: shutting down";
    post(job.session_id, std::move(result));
  }
}

bool StoreWorkerPool::runnable() const {
  for (const auto& job : jobs_)
    if (!std::holds_alternative<StoreWhole>(job.op) || !gate_->busy() || stopping_) return true;
  return false;
}

// Whole messages are committed by one worker at a time in the process (the
// CommitGate), all that are queued in this pool in one transaction: while that
// commit waits for its WAL flush, the next batch grows, so under load each
// flush covers many messages. Other ops run on the other workers meanwhile.
// When stopping, the gate is not waited for: closing sessions' last commits
// must not queue behind another loop's.
std::vector<StoreWorkerPool::Job> StoreWorkerPool::take_batch(bool& holds_gate) {
  std::vector<Job> batch;
  holds_gate = false;
  bool may_write = stopping_ || !gate_->busy();
  auto first = std::find_if(jobs_.begin(), jobs_.end(),
                            [&](const Job& j) { return !std::holds_alternative<StoreWhole>(j.op) || may_write; });
  if (first != jobs_.end() && std::holds_alternative<StoreWhole>(first->op) && !stopping_) {
    holds_gate = gate_->try_acquire();
    if (!holds_gate)  // another pool's worker took it just now: other work only
      first = std::find_if(jobs_.begin(), jobs_.end(),
                           [](const Job& j) { return !std::holds_alternative<StoreWhole>(j.op); });
  }
  if (first == jobs_.end()) return batch;
  batch.push_back(std::move(*first));
  jobs_.erase(first);
  if (!std::holds_alternative<StoreWhole>(batch.front().op)) return batch;
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
    bool holds_gate = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || runnable(); });
      // Queued jobs still run when stopping: they are the aborts of closing sessions.
      if (jobs_.empty()) return;
      batch = take_batch(holds_gate);
      if (batch.empty()) continue;
    }
    run_batch(store, batch);
    if (holds_gate) gate_->release();
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
      auto ids = store->store_messages(messages);
      log::debug("group commit: {} messages in one transaction", batch.size());
      for (std::size_t i = 0; i < batch.size(); ++i) {
        StoreResult result;
        result.ok = true;
        result.msg_id = ids.at(i);
        post(batch[i].session_id, std::move(result));
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
    if (store) result = run_store_op(*store, job.op);
    if (!result.ok) log::error("{} failed: {}", describe(job.op), result.error);
    post(job.session_id, std::move(result));
  }
}

void StoreWorkerPool::post(std::uint64_t session_id, StoreResult result) {
  {
    std::lock_guard lock(mutex_);
    done_.push_back(Done{session_id, std::move(result)});
  }
  event_active(done_event_.get(), EV_READ, 0);
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
