#include "db/relay_pools.h"

#include "log.h"

namespace wsmtp::common::pg {

std::optional<RelayPool> load_relay_pool(pqxx::connection& conn, const std::string& name) {
  pqxx::read_transaction tx(conn);
  auto pool = tx.exec_params(
      "SELECT tls_policy, eightbit_policy, max_messages_per_connection, extract(epoch FROM down_time)::bigint "
      "FROM relay_pools WHERE name = $1",
      name);
  if (pool.empty()) return std::nullopt;
  RelayPool p;
  p.name = name;
  p.tls_policy = pool[0][0].as<std::string>();
  p.eightbit_policy = pool[0][1].as<std::string>();
  p.max_messages_per_connection = pool[0][2].as<int>();
  p.down_time = std::chrono::seconds(pool[0][3].as<std::int64_t>());
  auto relays = tx.exec_params(
      "SELECT host, port, weight, COALESCE(down_until > now(), false), COALESCE(last_error, '') FROM relays "
      "WHERE pool = $1 AND weight > 0 ORDER BY host, port",
      name);
  for (const auto& r : relays)
    p.relays.push_back(
        {r[0].as<std::string>(), r[1].as<int>(), r[2].as<int>(), r[3].as<bool>(), r[4].as<std::string>()});
  return p;
}

void mark_relay_down(pqxx::connection& conn, const std::string& pool, const RelayHost& relay,
                     std::chrono::seconds down_time, const std::string& reason) {
  pqxx::work tx(conn);
  tx.exec_params0(
      "UPDATE relays SET down_until = now() + make_interval(secs => $4), last_error = $5 "
      "WHERE pool = $1 AND host = $2 AND port = $3",
      pool, relay.host, relay.port, static_cast<double>(down_time.count()), reason);
  tx.commit();
  log::warn("relay {}:{} of pool {} marked down for {}s: {}", relay.host, relay.port, pool, down_time.count(), reason);
}

}  // namespace wsmtp::common::pg
