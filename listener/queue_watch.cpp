#include "queue_watch.h"

#include <utility>

#include "log.h"

namespace wsmtp::listener {

QueueWatch::QueueWatch(StoreFactory factory, std::uint64_t max_size, std::chrono::milliseconds interval)
    : max_size_(max_size) {
  if (max_size_ != 0)
    sampler_ =
        std::make_unique<StoreSampler>("queue size", std::move(factory), interval,
                                       [this](const StoreSampler::StoreRef& store) { observe(store().queue_size()); });
}

QueueWatch::~QueueWatch() { stop(); }

void QueueWatch::stop() {
  if (sampler_) sampler_->stop();
}

void QueueWatch::observe(std::uint64_t size) {
  const bool full = size >= max_size_;
  if (full_.exchange(full, std::memory_order_relaxed) == full) return;
  if (full)
    log::warn("queue full: database is {} bytes, queue_max_size {}; MAIL answered 452 4.3.1", size, max_size_);
  else
    log::warn("queue no longer full: database is {} bytes, queue_max_size {}", size, max_size_);
}

}  // namespace wsmtp::listener
