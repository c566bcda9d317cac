// Bytes read back from bytea columns are the bytes stored, whichever text form
// the server sends them in.
#include <catch2/catch.hpp>

#include "pg/sql_util.h"
#include "test_database.h"

using namespace wsmtp;

TEST_CASE("bytea values decode to the stored bytes in hex and in escape form") {
  test::TestDatabase db;
  auto conn = db.connect();
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  all += all;  // every byte value, twice
  for (const char* form : {"hex", "escape"}) {
    pqxx::work tx(*conn);
    tx.exec0(std::string("SET LOCAL bytea_output = ") + form);
    pqxx::binarystring param(all.data(), all.size());
    auto row = tx.exec_params1("SELECT $1::bytea, ''::bytea, '\\x00'::bytea", param);
    INFO("bytea_output = " << form);
    CHECK(common::pg::bytea_value(row[0]) == all);
    CHECK(common::pg::bytea_value(row[1]).empty());
    CHECK(common::pg::bytea_value(row[2]) == std::string(1, '\0'));
  }
}
