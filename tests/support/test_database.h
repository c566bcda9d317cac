// A fresh database per test: created on the throwaway server that
// tests/harness/pgtmp.py started (WSMTP_TEST_PG), migrated from schema/, and
// dropped afterwards. A missing server is a failure, never a skip.
#pragma once

#include <memory>
#include <string>

#include <pqxx/pqxx>

namespace wsmtp::test {

class TestDatabase {
 public:
  TestDatabase();
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& conninfo() const { return conninfo_; }
  std::unique_ptr<pqxx::connection> connect() const;
  // Runs SQL for test setup and inspection (tests may look at rows directly).
  pqxx::result query(const std::string& sql);

 private:
  std::string admin_;
  std::string name_;
  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace wsmtp::test
