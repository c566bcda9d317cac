// The schema and the C++ state enum describe the same machine, migrations are
// idempotent, and a database newer than the binary is refused.
#include <catch2/catch.hpp>

#include "msg_state.h"
#include "pg/migrate.h"
#include "pg/waiter.h"
#include "test_database.h"

using namespace wsmtp;

TEST_CASE("msg_states and msg_transitions match MsgState") {
  test::TestDatabase db;
  auto states = db.query("SELECT state, name FROM msg_states ORDER BY state");
  REQUIRE(states.size() == common::kAllStates.size());
  for (const auto& row : states)
    CHECK(std::string(common::state_name(static_cast<common::MsgState>(row[0].as<int>()))) == row[1].as<std::string>());
  for (auto from : common::kAllStates)
    for (auto to : common::kAllStates) {
      if (from == to) continue;
      auto r =
          db.query("SELECT count(*) FROM msg_transitions WHERE from_state = " + std::to_string(static_cast<int>(from)) +
                   " AND to_state = " + std::to_string(static_cast<int>(to)));
      INFO(static_cast<int>(from) << " -> " << static_cast<int>(to));
      CHECK((r[0][0].as<int>() == 1) == common::transition_allowed(from, to));
    }
}

TEST_CASE("the database refuses moves outside the state machine") {
  test::TestDatabase db;
  db.query("INSERT INTO messages (envelope_from) VALUES ('a@b')");
  CHECK_THROWS_AS(db.query("UPDATE messages SET state = 3"), pqxx::sql_error);  // 0 -> 3
  CHECK_THROWS_AS(db.query("UPDATE messages SET state = 9"), pqxx::sql_error);  // no such state
  CHECK_THROWS_AS(db.query("INSERT INTO messages (envelope_from, state) VALUES ('a@b', 4)"), pqxx::sql_error);
  db.query("UPDATE messages SET state = 1");
  CHECK(db.query("SELECT received_at IS NOT NULL FROM messages")[0][0].as<bool>());
  CHECK_THROWS_AS(db.query("UPDATE messages SET state = 0"), pqxx::sql_error);  // backwards
}

TEST_CASE("the state triggers admit exactly the moves listed in msg_transitions") {
  // The triggers check moves against a constant list (schemas 012, 015) for
  // speed; this keeps it and the table the same machine, for moves stamped by
  // the schema and for moves that stamp themselves (as the daemons' do).
  test::TestDatabase db;
  for (const char* stamp : {"", ", state_changed_at = now() - interval '1 second'"})
    for (auto from : common::kAllStates)
      for (auto to : common::kAllStates) {
        if (from == to) continue;
        const auto f = std::to_string(static_cast<int>(from)), t = std::to_string(static_cast<int>(to));
        const bool listed =
            db.query("SELECT count(*) FROM msg_transitions WHERE from_state = " + f + " AND to_state = " + t)[0][0]
                .as<int>() == 1;
        // A message put in `from` directly (the triggers are disabled for the setup).
        db.query("ALTER TABLE messages DISABLE TRIGGER USER");
        auto id = db.query("INSERT INTO messages (envelope_from, state, received_at) VALUES ('a@b', " + f +
                           ", now()) RETURNING id")[0][0]
                      .as<std::string>();
        db.query("ALTER TABLE messages ENABLE TRIGGER USER");
        bool admitted = true;
        try {
          db.query("UPDATE messages SET state = " + t + stamp + " WHERE id = " + id);
        } catch (const pqxx::sql_error&) {
          admitted = false;
        }
        INFO(f << " -> " << t << (*stamp ? " (stamped by the statement)" : ""));
        CHECK(admitted == listed);
      }
  for (int s = 2; s <= 5; ++s) {
    INFO("created in state " << s);
    CHECK_THROWS_AS(db.query("INSERT INTO messages (envelope_from, state, received_at) VALUES ('a@b', " +
                             std::to_string(s) + ", now())"),
                    pqxx::check_violation);
  }
}

TEST_CASE("a move the statement does not stamp is stamped by the schema, and wakes the next stage") {
  test::TestDatabase db;
  auto listen = db.connect();
  common::pg::WorkWaiter deliver(*listen, common::pg::kDeliverChannel);
  auto id = db.query("INSERT INTO messages (envelope_from, state) VALUES ('a@b', 1) RETURNING id")[0][0].as<std::string>();
  CHECK(db.query("SELECT received_at IS NOT NULL FROM messages WHERE id = " + id)[0][0].as<bool>());
  db.query("UPDATE messages SET state_changed_at = now() - interval '1 day' WHERE id = " + id);
  db.query("UPDATE messages SET state = 2 WHERE id = " + id);
  CHECK(db.query("SELECT routing_at IS NOT NULL AND state_changed_at > now() - interval '1 minute' "
                 "FROM messages WHERE id = " + id)[0][0].as<bool>());
  CHECK_FALSE(deliver.wait(std::chrono::milliseconds(200)));
  db.query("UPDATE messages SET state = 3 WHERE id = " + id);
  CHECK(db.query("SELECT routed_at IS NOT NULL FROM messages WHERE id = " + id)[0][0].as<bool>());
  CHECK(deliver.wait(std::chrono::seconds(5)));
}

TEST_CASE("migrations are recorded, idempotent, and refuse a newer database") {
  test::TestDatabase db;
  auto conn = db.connect();
  const auto& all = common::pg::embedded_migrations();
  CHECK(common::pg::migrate(*conn, all).empty());
  auto status = common::pg::schema_status(*conn, all);
  CHECK(status.database_version == all.back().version);
  CHECK(status.pending.empty());
  CHECK_NOTHROW(common::pg::require_current_schema(*conn));
  db.query("INSERT INTO schema_version (version, name) VALUES (999, 'from_the_future')");
  CHECK_THROWS_AS(common::pg::migrate(*conn, all), common::pg::SchemaTooNew);
  CHECK_THROWS_AS(common::pg::require_current_schema(*conn), common::pg::SchemaTooNew);
}
