#include "store_sampler.h"

#include <exception>
#include <utility>

#include "log.h"

namespace wsmtp::listener {

StoreSampler::StoreSampler(std::string what, StoreFactory factory, std::chrono::milliseconds interval, Sample sample)
    : what_(std::move(what)), factory_(std::move(factory)), interval_(interval), sample_(std::move(sample)) {
  thread_ = std::thread([this] { run(); });
}

StoreSampler::~StoreSampler() { stop(); }

void StoreSampler::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StoreSampler::sample_once() {
  try {
    sample_([this]() -> common::Store& {
      if (!store_) store_ = factory_();
      return *store_;
    });
    if (std::exchange(failing_, false)) log::info("{} sampled again", what_);
  } catch (const std::exception& e) {
    store_.reset();  // a fresh connection next time
    if (!std::exchange(failing_, true)) log::warn("{} not sampled, keeping the last one: {}", what_, e.what());
  }
}

void StoreSampler::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    sample_once();
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

}  // namespace wsmtp::listener
