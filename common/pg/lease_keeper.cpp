// Why renewal is bounded by progress: the thread would happily renew forever,
// so a work thread wedged for good (a deadlock, a loop, a read without a
// timeout) would keep its message leased forever, and a poison message that
// wedges every worker that takes it would never be counted and held. So the
// worker reports progress at each step (every SMTP/LMTP reply and flushed
// write, every local copy, every routed chunk), and leases are renewed only
// while the last report is younger than stall_limit, the longest a healthy
// step may take under the worker's own timeouts (relay commands and the final
// dot have timeouts; see deliver/deliver.cpp). Past it the leases run out
// lease_time later and the expiry counts, as for a dead worker. A stopped
// process (SIGSTOP, SIGKILL) stops this thread with it, which needs no rule.
// A plain cap on a lease's total age was the alternative; it would either
// cut off a legitimately slow batch (up to 20 messages, each with minutes of
// relay timeouts) or be so long that poison mail hardly counted.
#include "pg/lease_keeper.h"

#include <algorithm>

#include "log.h"
#include "pg/connection.h"
#include "queue_id.h"

namespace wsmtp::common::pg {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Often enough that an operator's hold or delete reaches a worker within
// seconds even with the default 300 s lease (rounds that find more than five
// sixths of the lease left only read), and a short lease is renewed every
// round, so a late round (a loaded host) still finds two thirds of it left.
std::chrono::milliseconds tick_for(std::chrono::seconds lease_time) {
  return std::min<std::chrono::milliseconds>(std::chrono::duration_cast<std::chrono::milliseconds>(lease_time) / 3, 5s);
}

const char* status_words(LeaseStatus s) {
  switch (s) {
    case LeaseStatus::held:
      return "held by an operator: the step in flight finishes, nothing more is started for it";
    case LeaseStatus::lost:
      return "lease lost (the reaper or another worker took it): nothing more is started for it";
    case LeaseStatus::deleted:
      return "deleted by an operator while its worker held it: nothing more is sent for it";
    case LeaseStatus::ours:
      break;
  }
  // Back to ours from held (lost and deleted are final): a release.
  return "released by an operator: work on it goes on";
}

}  // namespace

LeaseKeeper::LeaseKeeper(LeaseKeeperOptions options)
    : options_(std::move(options)),
      tick_(tick_for(options_.lease_time)),
      last_progress_(Clock::now().time_since_epoch().count()),
      thread_([this] { run(); }) {}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void LeaseKeeper::progress() noexcept { last_progress_ = Clock::now().time_since_epoch().count(); }

LeaseKeeper::Kept LeaseKeeper::keep(MsgState leased, const std::vector<Lease>& leases) {
  std::vector<std::int64_t> ids;
  {
    std::lock_guard lock(mutex_);
    for (const auto& l : leases) {
      entries_[l.msg_id] = Entry{leased, l.token};
      ids.push_back(l.msg_id);
    }
  }
  progress();  // a fresh claim is progress: the stall clock starts now
  return Kept(this, std::move(ids));
}

void LeaseKeeper::release(const std::vector<std::int64_t>& ids) noexcept {
  std::lock_guard lock(mutex_);
  for (auto id : ids) entries_.erase(id);
}

LeaseKeeper::Kept::Kept(Kept&& other) noexcept : keeper_(other.keeper_), ids_(std::move(other.ids_)) {
  other.keeper_ = nullptr;
}

LeaseKeeper::Kept::~Kept() {
  if (keeper_) keeper_->release(ids_);
}

void LeaseKeeper::Kept::forget(std::int64_t msg_id) { keeper_->release({msg_id}); }

LeaseStatus LeaseKeeper::Kept::status(std::int64_t msg_id) const {
  std::lock_guard lock(keeper_->mutex_);
  auto it = keeper_->entries_.find(msg_id);
  return it == keeper_->entries_.end() ? LeaseStatus::ours : it->second.status;
}

bool LeaseKeeper::stalled() {
  const auto idle = Clock::now() - Clock::time_point(Clock::duration(last_progress_.load()));
  if (idle <= options_.stall_limit) {
    if (std::exchange(stall_logged_, false)) log::info("worker making progress again; its leases are renewed again");
    return false;
  }
  if (!std::exchange(stall_logged_, true))
    log::warn("worker made no progress for {}s (limit {}s): its leases are no longer renewed and expire",
              std::chrono::duration_cast<std::chrono::seconds>(idle).count(), options_.stall_limit.count());
  return true;
}

void LeaseKeeper::round() {
  std::lock_guard round_lock(round_mutex_);
  std::map<MsgState, std::vector<Lease>> by_state;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, e] : entries_)
      if (e.status == LeaseStatus::ours || e.status == LeaseStatus::held) by_state[e.leased].push_back({id, e.token});
  }
  if (by_state.empty() || stalled()) return;
  // A worker stopping waits for this thread: an unreachable database host
  // must not hold it for the minutes a TCP connect can take.
  if (!conn_) conn_ = connect(with_connect_timeout(options_.conninfo, 10));
  for (const auto& [leased, leases] : by_state) {
    auto checks = renew_leases(*conn_, leased, leases, options_.lease_time);
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < checks.size(); ++i) {
      // Only while the batch still holds it under the same token: a lease
      // finished (and released) meanwhile is no news.
      auto it = entries_.find(checks[i].msg_id);
      if (it == entries_.end() || it->second.token != leases[i].token || it->second.status == checks[i].status)
        continue;
      it->second.status = checks[i].status;
      if (checks[i].status == LeaseStatus::lost)
        log::warn("msg={} {}", qid(checks[i].msg_id), status_words(checks[i].status));
      else
        log::info("msg={} {}", qid(checks[i].msg_id), status_words(checks[i].status));
    }
  }
}

void LeaseKeeper::renew_now() { round(); }

void LeaseKeeper::run() noexcept {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, tick_, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    try {
      round();
    } catch (const std::exception& e) {
      // The leases run on for the rest of their time; the next round retries
      // on a new connection. If none comes, they expire as a dead worker's.
      log::warn("lease renewal failed: {}; retrying in {} ms", e.what(), tick_.count());
      std::lock_guard round_lock(round_mutex_);
      conn_.reset();
    }
    lock.lock();
  }
}

}  // namespace wsmtp::common::pg
