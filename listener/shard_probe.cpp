// Each change of a shard's state is logged once, at warn (a shard that is the
// wrong database at error): "leaves the rotation" with the first fault,
// "rejoins" when a check passes; repeated failed checks stay silent unless the
// fault changes.
#include "shard_probe.h"

#include <exception>

#include "log.h"

namespace wsmtp::listener {

ShardProbe::ShardProbe(Placement& placement, std::size_t index, Check check, std::chrono::milliseconds pause,
                       OnLeave on_leave)
    : placement_(placement), index_(index), check_(std::move(check)), pause_(pause), on_leave_(std::move(on_leave)) {}

void ShardProbe::start() {
  thread_ = std::thread([this] { run(); });
}

ShardProbe::~ShardProbe() { stop(); }

void ShardProbe::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int ShardProbe::checks() const {
  std::lock_guard lock(mutex_);
  return checks_;
}

void ShardProbe::lost(const ShardFault& fault) {
  bool left = false;
  {
    std::lock_guard lock(mutex_);
    left = leave(fault);
  }
  wake_.notify_all();
  if (left && on_leave_) on_leave_();
}

bool ShardProbe::leave(const ShardFault& fault) {
  const auto& name = placement_.shard(index_).name;
  placement_.set_reachable(index_, false);
  const bool was_out = std::exchange(out_, true);
  if (was_out && fault.why == last_why_) return false;
  last_why_ = fault.why;
  if (fault.wrong_database)
    log::error("shard {} is out of rotation, it is not the configured database: {}", name, fault.why);
  else if (!was_out)
    log::warn("shard {} leaves the rotation: {}", name, fault.why);
  else
    log::warn("shard {} still out of rotation: {}", name, fault.why);
  return !was_out;
}

void ShardProbe::check_once() {
  ShardFault fault;
  try {
    fault = check_();
  } catch (const std::exception& e) {
    fault.why = e.what();
  }
  bool left = false;
  {
    std::lock_guard lock(mutex_);
    ++checks_;
    if (!fault.why.empty()) {
      left = leave(fault);
    } else {
      placement_.set_reachable(index_, true);
      if (std::exchange(out_, false)) log::warn("shard {} rejoins the rotation", placement_.shard(index_).name);
      last_why_.clear();
    }
  }
  if (left && on_leave_) on_leave_();
}

void ShardProbe::run() {
  check_once();
  std::unique_lock lock(mutex_);
  auto last_check = std::chrono::steady_clock::now();
  while (!stopping_) {
    wake_.wait(lock, [this] { return stopping_ || out_; });
    if (stopping_) break;
    // At most one check per pause, however often stores report the shard lost.
    auto next = last_check + pause_;
    if (wake_.wait_until(lock, next, [this] { return stopping_; })) break;
    lock.unlock();
    check_once();
    lock.lock();
    last_check = std::chrono::steady_clock::now();
  }
}

}  // namespace wsmtp::listener
