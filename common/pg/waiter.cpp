#include "pg/waiter.h"

namespace wsmtp::common::pg {

class WorkWaiter::Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, const std::string& channel) : pqxx::notification_receiver(conn, channel) {}
  void operator()(const std::string&, int) override { ++count_; }
  long take() { return std::exchange(count_, 0); }

 private:
  long count_ = 0;
};

WorkWaiter::WorkWaiter(pqxx::connection& conn, const std::string& channel)
    : conn_(conn), receiver_(std::make_unique<Receiver>(conn, channel)) {}

WorkWaiter::~WorkWaiter() = default;

bool WorkWaiter::wait(std::chrono::milliseconds timeout) {
  conn_.get_notifs();
  if (receiver_->take() > 0) return true;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  conn_.await_notification(static_cast<long>(us / 1000000), static_cast<long>(us % 1000000));
  return receiver_->take() > 0;
}

void WorkWaiter::drain() {
  conn_.get_notifs();
  receiver_->take();
}

}  // namespace wsmtp::common::pg
