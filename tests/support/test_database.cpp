#include "test_database.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

#include "pg/migrate.h"

namespace wsmtp::test {
namespace {
std::atomic<int> g_counter{0};

std::string admin_conninfo() {
  const char* env = std::getenv("WSMTP_TEST_PG");
  if (!env || !*env)
    throw std::runtime_error("WSMTP_TEST_PG is not set: run through tests/harness/pgtmp.py (ctest does)");
  return env;
}
}  // namespace

TestDatabase::TestDatabase() : admin_(admin_conninfo()) {
  name_ = fmt::format("wsmtp_test_{}_{}", ::getpid(), g_counter++);
  {
    pqxx::connection admin(admin_);
    pqxx::nontransaction tx(admin);
    tx.exec0(fmt::format("DROP DATABASE IF EXISTS {}", name_));
    tx.exec0(fmt::format("CREATE DATABASE {}", name_));
  }
  conninfo_ = admin_ + " dbname=" + name_;
  conn_ = connect();
  common::pg::migrate(*conn_, common::pg::embedded_migrations());
}

TestDatabase::~TestDatabase() {
  try {
    conn_.reset();
    pqxx::connection admin(admin_);
    pqxx::nontransaction tx(admin);
    tx.exec0(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name_));
  } catch (...) {
    // The whole server is thrown away after the run anyway.
  }
}

std::unique_ptr<pqxx::connection> TestDatabase::connect() const {
  return std::make_unique<pqxx::connection>(conninfo_);
}

pqxx::result TestDatabase::query(const std::string& sql) {
  pqxx::work tx(*conn_);
  auto r = tx.exec(sql);
  tx.commit();
  return r;
}

}  // namespace wsmtp::test
