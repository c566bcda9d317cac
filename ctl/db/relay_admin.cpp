#include "db/relay_admin.h"

namespace wsmtp::common::pg {

void set_relay_pool(pqxx::transaction_base& tx, const RelayPoolSpec& p) {
  tx.exec_params0(
      "INSERT INTO relay_pools (name, tls_policy, eightbit_policy) VALUES ($1, $2, $3) "
      "ON CONFLICT (name) DO UPDATE SET tls_policy = EXCLUDED.tls_policy, eightbit_policy = EXCLUDED.eightbit_policy",
      p.name, p.tls_policy, p.eightbit_policy);
}

bool remove_relay_pool(pqxx::transaction_base& tx, const std::string& name) {
  return tx.exec_params("DELETE FROM relay_pools WHERE name = $1", name).affected_rows() == 1;
}

std::vector<RelayPoolSpec> list_relay_pools(pqxx::transaction_base& tx) {
  std::vector<RelayPoolSpec> out;
  for (const auto& r : tx.exec("SELECT name, tls_policy, eightbit_policy FROM relay_pools ORDER BY name"))
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>()});
  return out;
}

bool set_relay(pqxx::transaction_base& tx, const std::string& pool, const std::string& host, int port, int weight) {
  return tx.exec_params(
               "INSERT INTO relays (pool, host, port, weight) SELECT name, $2, $3, $4 FROM relay_pools "
               "WHERE name = $1 ON CONFLICT (pool, host, port) DO UPDATE SET weight = EXCLUDED.weight",
               pool, host, port, weight)
             .affected_rows() == 1;
}

bool remove_relay(pqxx::transaction_base& tx, const std::string& pool, const std::string& host, int port) {
  return tx.exec_params("DELETE FROM relays WHERE pool = $1 AND host = $2 AND port = $3", pool, host, port)
             .affected_rows() == 1;
}

std::vector<RelayRow> list_relays(pqxx::transaction_base& tx, const std::string& pool) {
  std::vector<RelayRow> out;
  auto rows = tx.exec_params(
      "SELECT pool, host, port, weight, "
      "  COALESCE(CASE WHEN down_until > now() THEN to_char(down_until AT TIME ZONE 'UTC', "
      "    'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END, ''), COALESCE(last_error, '') "
      "FROM relays WHERE $1 = '' OR pool = $1 ORDER BY pool, host, port",
      pool);
  for (const auto& r : rows)
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<int>(), r[3].as<int>(),
                   r[4].as<std::string>(), r[5].as<std::string>()});
  return out;
}

}  // namespace wsmtp::common::pg
