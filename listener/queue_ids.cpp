// A mutex around a deque: taken once per message, held for a few instructions.
// A refill that never reports back (its job was cancelled at shutdown, or the
// worker had no connection) leaves refilling_ set; the next session to find the
// reserve empty refills it through take_or_reserve, which clears it.
#include "queue_ids.h"

#include <stdexcept>

#include <fmt/format.h>

namespace wsmtp::listener {

QueueIdReserve::QueueIdReserve(int block) : block_(block) {
  if (block < 1 || block > 1000) throw std::invalid_argument(fmt::format("queue id block of {}", block));
}

std::optional<std::int64_t> QueueIdReserve::take() {
  std::lock_guard lock(mutex_);
  if (ids_.empty()) return std::nullopt;
  auto id = ids_.front();
  ids_.pop_front();
  return id;
}

bool QueueIdReserve::refill_due(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (refilling_ || ids_.size() * 2 >= static_cast<std::size_t>(block_)) return false;
  if (refill_failed_ && now - last_request_ < kRetryPause) return false;
  refilling_ = true;
  last_request_ = now;
  return true;
}

std::int64_t QueueIdReserve::take_or_reserve(common::Store& store) {
  if (auto id = take()) return *id;
  // Several workers may get here at once (many sessions found it empty): each
  // reserves a block; the spare ids are kept, not lost.
  auto ids = store.reserve_message_ids(block_);
  if (ids.empty()) throw std::runtime_error("no message id reserved");
  add(ids, 1);
  return ids.front();
}

void QueueIdReserve::refill(common::Store& store) {
  try {
    add(store.reserve_message_ids(block_), 0);
  } catch (...) {
    std::lock_guard lock(mutex_);
    refilling_ = false;
    refill_failed_ = true;
    throw;
  }
}

std::size_t QueueIdReserve::size() {
  std::lock_guard lock(mutex_);
  return ids_.size();
}

void QueueIdReserve::add(const std::vector<std::int64_t>& ids, std::size_t skip) {
  std::lock_guard lock(mutex_);
  for (std::size_t i = skip; i < ids.size(); ++i) ids_.push_back(ids[i]);
  refilling_ = false;
  refill_failed_ = false;
}

}  // namespace wsmtp::listener
