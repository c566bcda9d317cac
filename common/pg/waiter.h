// Waking idle workers: LISTEN on a channel that the schema trigger NOTIFYs when
// work appears, with a timeout as the slow-poll fallback (a lost notification
// costs at most one poll interval, never a stuck message).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

inline constexpr const char* kRouteChannel = "wsmtp_route";
inline constexpr const char* kDeliverChannel = "wsmtp_deliver";

class WorkWaiter {
 public:
  // Issues LISTEN on conn; conn must outlive the waiter.
  WorkWaiter(pqxx::connection& conn, const std::string& channel);
  ~WorkWaiter();
  WorkWaiter(const WorkWaiter&) = delete;
  WorkWaiter& operator=(const WorkWaiter&) = delete;

  // Returns true if a notification arrived (or was already pending), false on
  // timeout. Must be called outside any transaction on conn.
  bool wait(std::chrono::milliseconds timeout);
  // Forgets the notifications that have arrived: the caller is about to look
  // for work anyway. Must be called outside any transaction on conn.
  void drain();

 private:
  class Receiver;
  pqxx::connection& conn_;
  std::unique_ptr<Receiver> receiver_;
};

}  // namespace wsmtp::common::pg
