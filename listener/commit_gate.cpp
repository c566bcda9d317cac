#include "commit_gate.h"

namespace wsmtp::listener {

void CommitGate::release() {
  busy_.store(false);
  std::lock_guard lock(mutex_);
  for (auto& [token, wake] : waiters_) wake();
}

std::uint64_t CommitGate::subscribe(std::function<void()> wake) {
  std::lock_guard lock(mutex_);
  waiters_.emplace(next_token_, std::move(wake));
  return next_token_++;
}

void CommitGate::unsubscribe(std::uint64_t token) {
  std::lock_guard lock(mutex_);
  waiters_.erase(token);
}

}  // namespace wsmtp::listener
