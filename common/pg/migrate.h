// Applying schema migrations: each missing one in its own transaction, recorded in
// schema_version. An advisory lock keeps two migrators from racing.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "pg/schema_migrations.h"

namespace wsmtp::common::pg {

class SchemaTooNew : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SchemaStatus {
  int database_version = 0;  // 0: no schema yet
  int binary_version = 0;
  std::vector<Migration> pending;
};

SchemaStatus schema_status(pqxx::connection& conn, const std::vector<Migration>& migrations);

// Applies the pending migrations and returns them. Throws SchemaTooNew when the
// database has a version this binary does not know.
std::vector<Migration> migrate(pqxx::connection& conn, const std::vector<Migration>& migrations);

// Throws SchemaTooNew or std::runtime_error unless the database is exactly at the
// binary's version; daemons call this at start.
void require_current_schema(pqxx::connection& conn);

}  // namespace wsmtp::common::pg
