// Schema 008 against a real PostgreSQL: mailbox quotas as wsmtpctl writes and
// wdeliver reads them (only limited mailboxes, one query per batch), their
// CHECKs, the relay pools' 'convert' policy (the new default; older pools keep
// theirs), and the mbox append journal (deliveries.spool_offset).
#include <catch2/catch.hpp>

#include "deliver/db/mbox_journal.h"
#include "pg/mailbox_quota.h"
#include "pg/directory.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;

namespace {

void add_mailboxes(pqxx::connection& conn) {
  pqxx::work tx(conn);
  add_domain(tx, "x.test");
  for (const char* user : {"a", "b", "c"})
    add_mailbox(tx, std::string(user) + "@x.test", "x.test", std::string("/m/") + user);
  tx.commit();
}

}  // namespace

TEST_CASE("quotas: set, read per batch (only limited mailboxes), lifted, and checked by the schema") {
  test::TestDatabase db;
  auto conn = db.connect();
  add_mailboxes(*conn);
  {
    pqxx::work tx(*conn);
    CHECK(set_mailbox_quota(tx, "a@x.test", {1 << 20, std::nullopt}));
    CHECK(set_mailbox_quota(tx, "b@x.test", {std::nullopt, 50}));
    CHECK_FALSE(set_mailbox_quota(tx, "nobody@x.test", {1, 1}));
    tx.commit();
  }
  auto quotas = load_mailbox_quotas(*conn, {"a@x.test", "b@x.test", "c@x.test", "zz@x.test"});
  REQUIRE(quotas.size() == 2);
  CHECK(quotas["a@x.test"].bytes == (1 << 20));
  CHECK_FALSE(quotas["a@x.test"].messages);
  CHECK(quotas["b@x.test"].messages == 50);
  CHECK(load_mailbox_quotas(*conn, {}).empty());
  {
    pqxx::work tx(*conn);
    CHECK(set_mailbox_quota(tx, "a@x.test", {}));
    CHECK_FALSE(mailbox_quota(tx, "a@x.test")->limited());
    CHECK(mailbox_quota(tx, "b@x.test")->messages == 50);
    CHECK_FALSE(mailbox_quota(tx, "nobody@x.test"));
    tx.commit();
  }
  CHECK(load_mailbox_quotas(*conn, {"a@x.test"}).empty());
  CHECK_THROWS_AS(db.query("UPDATE mailboxes SET quota_bytes = 0 WHERE address = 'c@x.test'"), pqxx::check_violation);
  CHECK_THROWS_AS(db.query("UPDATE mailboxes SET quota_messages = -1 WHERE address = 'c@x.test'"),
                  pqxx::check_violation);
}

TEST_CASE("relay pools: convert is the default 8-bit policy and a valid one; others are refused") {
  test::TestDatabase db;
  db.query("INSERT INTO relay_pools (name) VALUES ('p1')");
  db.query("INSERT INTO relay_pools (name, eightbit_policy) VALUES ('p2', 'bounce'), ('p3', 'send')");
  CHECK(db.query("SELECT eightbit_policy FROM relay_pools WHERE name = 'p1'")[0][0].as<std::string>() == "convert");
  CHECK_THROWS_AS(db.query("INSERT INTO relay_pools (name, eightbit_policy) VALUES ('p4', 'mangle')"),
                  pqxx::check_violation);
}

TEST_CASE("the mbox journal: an offset is stored for a pending delivery and read back") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto id = db.query(
                  "WITH m AS (INSERT INTO messages (envelope_from) VALUES ('s@x.org') RETURNING id) "
                  "INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination) "
                  "SELECT id, 'a@x.test', 'a@x.test', 'mbox', '/var/mail/a' FROM m RETURNING id")[0][0]
                .as<std::int64_t>();
  CHECK_FALSE(load_spool_offset(*conn, id));
  save_spool_offset(*conn, id, 4096);
  CHECK(load_spool_offset(*conn, id) == 4096);
  save_spool_offset(*conn, id, 0);
  CHECK(load_spool_offset(*conn, id) == 0);
  CHECK_FALSE(load_spool_offset(*conn, id + 1000));
  // A final delivery is not retried: its journal is left alone.
  db.query("UPDATE deliveries SET status = 'delivered', final_at = now() WHERE id = " + std::to_string(id));
  save_spool_offset(*conn, id, 99);
  CHECK(load_spool_offset(*conn, id) == 0);
  CHECK_THROWS_AS(db.query("UPDATE deliveries SET spool_offset = -1"), pqxx::check_violation);
}
