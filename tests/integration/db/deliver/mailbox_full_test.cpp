// Schema 019 as the daemons' roles use it: wdeliver marks a mailbox full and
// clears the mark (only that column), the listener's recipient check reads it
// in its one query (a mark older than an hour no longer refuses), wsmtpctl's
// quota change clears it, and the listener may ask pg_database_size.
#include <catch2/catch.hpp>

#include "deliver/db/mailbox_full.h"
#include "pg/directory.h"
#include "pg/mailbox_quota.h"
#include "role_connection.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using common::RecipientVerdict;
using test::connect_as;
using test::query_as;

namespace {

RecipientVerdict verdict(pqxx::connection& conn, const std::string& address) {
  pqxx::work tx(conn);
  return check_recipient(tx, address, "x.test");
}

std::string mark_of(test::TestDatabase& db, const std::string& address) {
  auto r = db.query("SELECT coalesce(over_quota_seen::text, '') FROM mailboxes WHERE address = '" + address + "'");
  return r[0][0].as<std::string>();
}

}  // namespace

TEST_CASE("a mailbox found full is refused at RCPT until a copy fits or its quota changes") {
  test::TestDatabase db;
  {
    auto admin = db.connect();
    pqxx::work tx(*admin);
    add_domain(tx, "x.test");
    tx.exec("UPDATE domains SET recipient_delimiter = '+' WHERE name = 'x.test'");
    for (const char* user : {"a", "b"})
      add_mailbox(tx, std::string(user) + "@x.test", "x.test", std::string("/m/") + user);
    tx.commit();
  }
  auto deliver = connect_as(db, "wsmtp_deliver");
  auto listener = connect_as(db, "wsmtp_listener");
  CHECK(verdict(*listener, "a@x.test") == RecipientVerdict::known_local);

  record_mailbox_fullness(*deliver, {"a@x.test"}, {});
  const auto first = mark_of(db, "a@x.test");
  CHECK_FALSE(first.empty());
  CHECK(mark_of(db, "b@x.test").empty());
  CHECK(verdict(*listener, "a@x.test") == RecipientVerdict::full_local);
  CHECK(verdict(*listener, "a+tag@x.test") == RecipientVerdict::full_local);
  CHECK(verdict(*listener, "b@x.test") == RecipientVerdict::known_local);
  // Marked again within ten minutes: no write, the mark keeps its time.
  record_mailbox_fullness(*deliver, {"a@x.test"}, {});
  CHECK(mark_of(db, "a@x.test") == first);

  record_mailbox_fullness(*deliver, {}, {"a@x.test", "b@x.test"});
  CHECK(mark_of(db, "a@x.test").empty());
  CHECK(verdict(*listener, "a@x.test") == RecipientVerdict::known_local);

  // A stale mark (no deferred copy left to clear it) refuses nothing; a
  // fresh one is refreshed by the next copy that does not fit.
  db.query("UPDATE mailboxes SET over_quota_seen = now() - interval '2 hours' WHERE address = 'a@x.test'");
  CHECK(verdict(*listener, "a@x.test") == RecipientVerdict::known_local);
  record_mailbox_fullness(*deliver, {"a@x.test"}, {});
  CHECK(verdict(*listener, "a@x.test") == RecipientVerdict::full_local);

  {
    auto admin = connect_as(db, "wsmtp_admin");
    pqxx::work tx(*admin);
    REQUIRE(set_mailbox_quota(tx, "a@x.test", {1 << 20, std::nullopt}));
    tx.commit();
  }
  CHECK(verdict(*listener, "a@x.test") == RecipientVerdict::known_local);

  // The deliverer's grant is this one column; the listener only reads it.
  CHECK_THROWS_AS(query_as(*deliver, "UPDATE mailboxes SET quota_bytes = 1"), pqxx::insufficient_privilege);
  CHECK_THROWS_AS(query_as(*listener, "UPDATE mailboxes SET over_quota_seen = NULL"), pqxx::insufficient_privilege);
  // [listener] queue_max_size's sample works as the listener's role.
  CHECK(query_as(*listener, "SELECT pg_database_size(current_database())")[0][0].as<std::int64_t>() > 0);
}
