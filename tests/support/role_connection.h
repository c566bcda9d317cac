// Connections as the daemons' database roles, for the tests of least
// privilege (schema/005_roles.sql, 018_row_security.sql): a login role that is
// a member of one group role only, as deploy/README.md sets up each host.
#pragma once
#include <memory>
#include <string>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "test_database.h"

namespace wsmtp::test {

// Login roles are per cluster: created once, reused by every test database.
inline void ensure_login_role(TestDatabase& db, const std::string& login, const std::string& group) {
  db.query(
      fmt::format("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{0}') THEN "
                  "CREATE ROLE {0} LOGIN IN ROLE {1}; END IF; END $$",
                  login, group));
}

// A connection as `login` (default t_<group>), a member of `group` only
// (libpq: the last user= wins). Two logins of one group are two hosts.
inline std::unique_ptr<pqxx::connection> connect_as(TestDatabase& db, const std::string& group,
                                                    const std::string& login = "") {
  const std::string user = login.empty() ? "t_" + group : login;
  ensure_login_role(db, user, group);
  return std::make_unique<pqxx::connection>(db.conninfo() + " user=" + user);
}

// Runs one statement in its own transaction; returns its rows.
inline pqxx::result query_as(pqxx::connection& conn, const std::string& sql) {
  pqxx::work tx(conn);
  auto r = tx.exec(sql);
  tx.commit();
  return r;
}

// Runs one statement in its own transaction; returns the rows it changed.
inline std::size_t exec_as(pqxx::connection& conn, const std::string& sql) {
  return query_as(conn, sql).affected_rows();
}

}  // namespace wsmtp::test
