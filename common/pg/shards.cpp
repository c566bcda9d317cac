#include "pg/shards.h"

#include <fmt/format.h>

namespace wsmtp::common::pg {

std::optional<ShardIdentity> read_shard_identity(pqxx::connection& conn) {
  pqxx::read_transaction tx(conn);
  auto rows = tx.exec("SELECT name, shard_id FROM shard_identity");
  if (rows.empty()) return std::nullopt;
  return ShardIdentity{rows[0][0].as<std::string>(), rows[0][1].as<int>()};
}

void claim_shard_identity(pqxx::connection& conn, const ShardConfig& shard) {
  try {
    pqxx::work tx(conn);
    tx.exec_params("SELECT claim_shard_identity($1, $2)", shard.name, shard.id);
    tx.commit();
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    throw WrongShard(fmt::format("shard \"{}\" (id {}): {}", shard.name, shard.id, e.what()));
  }
}

void require_shard_identity(pqxx::connection& conn, const DatabaseConfig& database, const ShardConfig& shard) {
  auto found = read_shard_identity(conn);
  if (!found) {
    if (database.single()) return;
    throw WrongShard(fmt::format(
        "shard \"{}\" (id {}): its database has no shard identity yet; run wsmtpctl db migrate", shard.name, shard.id));
  }
  if (found->id != shard.id)
    throw WrongShard(
        fmt::format("shard \"{}\" (id {}): its database is shard \"{}\" (id {}); check [shard {}] conninfo", shard.name,
                    shard.id, found->name, found->id, shard.name));
}

}  // namespace wsmtp::common::pg
