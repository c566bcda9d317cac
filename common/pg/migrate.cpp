#include "pg/migrate.h"

#include <fmt/format.h>

#include "log.h"

namespace wsmtp::common::pg {
namespace {

// Arbitrary constant shared by every wsmtpctl: only one migrates at a time.
constexpr long kMigrationLock = 0x77736d7470;  // "wsmtp"

int current_version(pqxx::transaction_base& tx) {
  tx.exec0(
      "CREATE TABLE IF NOT EXISTS schema_version ("
      " version integer PRIMARY KEY, name text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
  return tx.exec1("SELECT COALESCE(max(version), 0) FROM schema_version")[0].as<int>();
}

int read_version(pqxx::connection& conn) {
  pqxx::work tx(conn);
  auto exists = tx.exec1("SELECT to_regclass('schema_version') IS NOT NULL")[0].as<bool>();
  int v = exists ? tx.exec1("SELECT COALESCE(max(version), 0) FROM schema_version")[0].as<int>() : 0;
  tx.commit();
  return v;
}

int binary_version(const std::vector<Migration>& migrations) {
  return migrations.empty() ? 0 : migrations.back().version;
}

}  // namespace

SchemaStatus schema_status(pqxx::connection& conn, const std::vector<Migration>& migrations) {
  SchemaStatus s;
  s.database_version = read_version(conn);
  s.binary_version = binary_version(migrations);
  for (const auto& m : migrations)
    if (m.version > s.database_version) s.pending.push_back(m);
  return s;
}

std::vector<Migration> migrate(pqxx::connection& conn, const std::vector<Migration>& migrations) {
  std::vector<Migration> applied;
  // A session-level lock: it spans the per-migration transactions below.
  auto advisory = [&conn](const char* fn) {
    pqxx::nontransaction ntx(conn);
    ntx.exec_params(fmt::format("SELECT {}($1)", fn), kMigrationLock);
  };
  advisory("pg_advisory_lock");
  try {
    for (const auto& m : migrations) {
      pqxx::work tx(conn);
      int have = current_version(tx);
      if (have > binary_version(migrations))
        throw SchemaTooNew(
            fmt::format("database schema is version {}, newer than this binary's {}; "
                        "upgrade wsmtp before using this database",
                        have, binary_version(migrations)));
      if (m.version <= have) continue;
      tx.exec0(m.sql);
      tx.exec_params0("INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.version, m.name);
      tx.commit();
      log::info("applied migration {} ({})", m.version, m.name);
      applied.push_back(m);
    }
    if (migrations.empty()) {
      pqxx::work tx(conn);
      current_version(tx);
      tx.commit();
    }
  } catch (...) {
    advisory("pg_advisory_unlock");
    throw;
  }
  advisory("pg_advisory_unlock");
  return applied;
}

void require_current_schema(pqxx::connection& conn) {
  const auto& migrations = embedded_migrations();
  int have = read_version(conn);
  int want = binary_version(migrations);
  if (have > want)
    throw SchemaTooNew(fmt::format("database schema is version {}, newer than this binary's {}", have, want));
  if (have < want)
    throw std::runtime_error(
        fmt::format("database schema is version {}, this binary needs {}: run 'wsmtpctl db migrate'", have, want));
}

}  // namespace wsmtp::common::pg
