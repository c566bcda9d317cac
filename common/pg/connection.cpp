#include "pg/connection.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "log.h"

namespace wsmtp::common::pg {

std::unique_ptr<pqxx::connection> connect(const std::string& conninfo) {
  auto c = std::make_unique<pqxx::connection>(conninfo);
  // Claims and transitions use now(); all hosts must agree on one clock: the server's.
  return c;
}

std::string with_connect_timeout(const std::string& conninfo, int seconds) {
  if (conninfo.find("connect_timeout") != std::string::npos || conninfo.rfind("postgres", 0) == 0) return conninfo;
  return conninfo + (conninfo.empty() ? "" : " ") + "connect_timeout=" + std::to_string(seconds);
}

std::unique_ptr<pqxx::connection> connect_with_backoff(const std::string& conninfo, const std::atomic<bool>& stop) {
  using namespace std::chrono_literals;
  auto delay = 100ms;
  int failures = 0;
  while (!stop) {
    try {
      auto c = connect(conninfo);
      if (failures) log::info("database reachable again after {} failed attempts", failures);
      return c;
    } catch (const std::exception& e) {
      if (failures++ == 0 || failures % 20 == 0)
        log::warn("cannot connect to database (attempt {}): {}", failures, e.what());
    }
    for (auto waited = 0ms; waited < delay && !stop; waited += 50ms) std::this_thread::sleep_for(50ms);
    delay = std::min<std::chrono::milliseconds>(delay * 2, 10s);
  }
  return nullptr;
}

bool is_connection_error(const std::exception& e) {
  return dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
         dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr;
}

}  // namespace wsmtp::common::pg
