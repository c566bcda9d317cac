// Relay pools as the deliverer reads them (schema 004): a pool's settings and its
// relays with weights and down-marks, and marking a relay down (it returns by itself when down_until passes). The
// marks live in the database so every wdeliver on every host skips a dead relay.
// Also the message size a relay transaction announces (SIZE=).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

struct RelayHost {
  std::string host;
  int port = 25;
  int weight = 1;
  bool down = false;         // down_until is in the future
  std::string last_error{};  // why it was last marked down
};

struct RelayPool {
  std::string name;
  std::string tls_policy;       // none | opportunistic | required
  std::string eightbit_policy;  // convert | bounce | send
  int max_messages_per_connection = 100;
  std::chrono::seconds down_time{60};
  std::vector<RelayHost> relays;
};

// nullopt if no pool of that name exists.
std::optional<RelayPool> load_relay_pool(pqxx::connection& conn, const std::string& name);

// Out of rotation for the pool's down_time, with the reason (connection refused, 4xx greeting...).
void mark_relay_down(pqxx::connection& conn, const std::string& pool, const RelayHost& relay,
                     std::chrono::seconds down_time, const std::string& reason);

}  // namespace wsmtp::common::pg
