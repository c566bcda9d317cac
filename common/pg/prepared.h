// Prepared statements for hot paths (the router's claims and directory
// lookups, the deliverer's finish): each statement is parsed and planned once
// per database connection instead of on every call. libpqxx keeps the
// definitions per connection, so a reconnected worker prepares them again.
#pragma once

#include <utility>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// Defines `name` as `sql` on tx's connection (a no-op once defined with the same
// text; a different text under the same name throws pqxx::argument_error, a
// bug) and executes it. Throws what the statement throws.
template <typename... Args>
pqxx::result exec_prepared_sql(pqxx::transaction_base& tx, const char* name, const char* sql, Args&&... args) {
  tx.conn().prepare(name, sql);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

}  // namespace wsmtp::common::pg
