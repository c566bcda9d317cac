// Administration of relay pools and their relays (wsmtpctl relay); the
// deliverer's reading side is deliver/db/relay_pools.h.
#pragma once

#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

struct RelayPoolSpec {
  std::string name;
  std::string tls_policy = "opportunistic";  // none | opportunistic | required
  std::string eightbit_policy = "convert";   // convert | bounce | send
};

struct RelayRow {
  std::string pool, host;
  int port = 25;
  int weight = 1;
  std::string down_until, last_error;  // "" when up
};

// Creates or updates a pool. Throws pqxx::check_violation for a bad policy.
void set_relay_pool(pqxx::transaction_base& tx, const RelayPoolSpec& pool);
bool remove_relay_pool(pqxx::transaction_base& tx, const std::string& name);
std::vector<RelayPoolSpec> list_relay_pools(pqxx::transaction_base& tx);
// Adds a relay to an existing pool or changes its weight; false if no such pool.
bool set_relay(pqxx::transaction_base& tx, const std::string& pool, const std::string& host, int port, int weight);
bool remove_relay(pqxx::transaction_base& tx, const std::string& pool, const std::string& host, int port);
std::vector<RelayRow> list_relays(pqxx::transaction_base& tx, const std::string& pool);

}  // namespace wsmtp::common::pg
