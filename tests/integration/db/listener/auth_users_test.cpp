// AUTH credentials against a real database: only argon2id hashes are stored,
// the right password verifies, wrong ones, unknown and disabled users do not,
// and the PgStore the listener uses gives the same answers.
#include <catch2/catch.hpp>

#include "pg/auth_users.h"
#include "listener/db/message_store.h"
#include "test_database.h"

using namespace wsmtp;

TEST_CASE("auth users are stored hashed and verified") {
  test::TestDatabase db;
  auto conn = db.connect();
  {
    pqxx::work tx(*conn);
    CHECK(common::pg::set_auth_user(tx, "alice", "correct horse"));
    CHECK_FALSE(common::pg::set_auth_user(tx, "alice", "battery staple"));  // update, not create
    CHECK(common::pg::set_auth_user(tx, "bob", "s3cret"));
    tx.commit();
  }
  auto stored = db.query("SELECT password_hash FROM auth_users WHERE username = 'alice'")[0][0].as<std::string>();
  CHECK(stored.rfind("$argon2id$", 0) == 0);
  CHECK(stored.find("battery") == std::string::npos);

  pqxx::work tx(*conn);
  CHECK(common::pg::verify_auth_user(tx, "alice", "battery staple"));
  CHECK_FALSE(common::pg::verify_auth_user(tx, "alice", "correct horse"));
  CHECK_FALSE(common::pg::verify_auth_user(tx, "alice", ""));
  CHECK_FALSE(common::pg::verify_auth_user(tx, "carol", "s3cret"));
  CHECK(common::pg::list_auth_users(tx) == std::vector<std::string>{"alice", "bob"});
  CHECK(common::pg::set_auth_user_disabled(tx, "bob", true));
  CHECK_FALSE(common::pg::verify_auth_user(tx, "bob", "s3cret"));
  CHECK(common::pg::delete_auth_user(tx, "alice"));
  CHECK_FALSE(common::pg::delete_auth_user(tx, "alice"));
  CHECK_THROWS_AS(common::pg::set_auth_user(tx, "", "x"), std::invalid_argument);
  CHECK_THROWS_AS(common::pg::set_auth_user(tx, "dave", ""), std::invalid_argument);
  tx.commit();
}

TEST_CASE("the schema refuses anything but an argon2id hash") {
  test::TestDatabase db;
  CHECK_THROWS_AS(db.query("INSERT INTO auth_users (username, password_hash) VALUES ('x', 'plaintext')"),
                  pqxx::sql_error);
}

TEST_CASE("PgStore verifies users for the listener") {
  test::TestDatabase db;
  {
    auto conn = db.connect();
    pqxx::work tx(*conn);
    common::pg::set_auth_user(tx, "relay-user", "pw with spaces");
    tx.commit();
  }
  auto store = common::pg::make_pg_store(db.conninfo(), std::make_shared<common::pg::WakeupSender>(db.conninfo()));
  CHECK(store->verify_user("relay-user", "pw with spaces"));
  CHECK_FALSE(store->verify_user("relay-user", "pw"));
  CHECK_FALSE(store->verify_user("nobody", "pw with spaces"));
}
