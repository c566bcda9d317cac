// Schema 016: the database refuses transports nobody delivers, and destinations
// of the wrong form for their transport.
#include <catch2/catch.hpp>

#include "pg/directory.h"
#include "test_database.h"

using namespace wsmtp;

namespace {

bool accepted(test::TestDatabase& db, const std::string& sql) {
  try {
    db.query(sql);
    return true;
  } catch (const pqxx::check_violation&) {
    return false;
  }
}

std::string mailbox(const std::string& user, const std::string& transport, const std::string& destination) {
  return "INSERT INTO mailboxes (address, domain, transport, maildir) VALUES ('" + user + "@x.test', 'x.test', '" +
         transport + "', '" + destination + "')";
}

}  // namespace

TEST_CASE("mailboxes take maildir, mbox and lmtp with a destination of their form") {
  test::TestDatabase db;
  db.query("INSERT INTO domains (name) VALUES ('x.test')");
  CHECK(accepted(db, mailbox("a", "maildir", "/var/mail/a/Maildir")));
  CHECK(accepted(db, mailbox("b", "mbox", "/var/spool/mail/b")));
  CHECK(accepted(db, mailbox("c", "lmtp", "/run/dovecot/lmtp")));
  CHECK(accepted(db, mailbox("d", "lmtp", "127.0.0.1:24")));
  CHECK(accepted(db, mailbox("e", "lmtp", "lmtp.internal:24")));
  CHECK_FALSE(accepted(db, mailbox("f", "relay", "/x")));
  CHECK_FALSE(accepted(db, mailbox("g", "Maildir", "/x")));
  CHECK_FALSE(accepted(db, mailbox("h", "maildir", "127.0.0.1:24")));  // host:port only for LMTP
  CHECK_FALSE(accepted(db, mailbox("i", "mbox", "spool")));
  CHECK_FALSE(accepted(db, mailbox("j", "lmtp", "localhost")));
  CHECK_FALSE(accepted(db, mailbox("k", "lmtp", "h:24; DROP")));
  auto conn = db.connect();
  pqxx::work tx(*conn);
  CHECK(common::pg::add_mailbox(tx, "l@x.test", "x.test", "10.0.0.5:2424", "lmtp"));
  auto m = common::pg::find_mailbox(tx, "l@x.test");
  REQUIRE(m);
  CHECK(m->transport == "lmtp");
  CHECK(m->maildir == "10.0.0.5:2424");
}

TEST_CASE("deliveries take the transports the router plans and nothing else") {
  test::TestDatabase db;
  auto id = db.query("INSERT INTO messages (envelope_from) VALUES ('s@x.org') RETURNING id")[0][0].as<std::string>();
  auto delivery = [&](const std::string& transport) {
    return "INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination) VALUES (" + id +
           ", 'r-" + transport + "@x.test', 'r@x.test', '" + transport + "', '/d')";
  };
  for (const char* t : {"maildir", "mbox", "lmtp", "relay", "bounce"}) {
    INFO(t);
    CHECK(accepted(db, delivery(t)));
  }
  CHECK_FALSE(accepted(db, delivery("smtp")));
  CHECK_FALSE(accepted(db, delivery("")));
}
