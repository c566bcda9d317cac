// Vacation replies through the real router and database (RFC 3834 rules, once
// per sender per period), and the wsmtpctl-facing administration functions.
#include "ctl/db/routing_admin.h"
#include "router/db/autoreplies.h"
#include "router_support.h"

using namespace wsmtp;
using namespace wsmtp::test;

namespace {

std::string mail_to(const std::string& to, const std::string& extra = "") {
  return "To: " + to + "\r\n" + extra + "Subject: lunch?\r\nMessage-ID: <q1@remote.example>\r\n\r\nbody\r\n";
}

int replies_to(TestDatabase& db, const std::string& sender) {
  return count(db,
               "SELECT count(*) FROM messages m JOIN recipients r ON "
               "r.message_id = m.id "
               "WHERE m.envelope_from = '' AND r.address = '" +
                   sender + "'");
}

}  // namespace

TEST_CASE(
    "a vacation reply goes once per sender, never to automata, lists or "
    "indirect mail") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "bo"});
  {
    pqxx::work tx(*conn);
    common::pg::set_autoreply(tx, {"ann@example.org", "Away", "Back on Monday.\n", "", "", 7 * 24 * 3600});
    common::pg::add_list(tx, {"team@example.org", "bo@example.org", "", common::PostingPolicy::anyone, "", "", ""});
    common::pg::add_list_member(tx, "team@example.org", "ann@example.org");
    tx.commit();
  }
  receive(*conn, "s1@remote.example", {"ann@example.org"}, mail_to("Ann <ann@example.org>"));
  receive(*conn, "s1@remote.example", {"ann@example.org"},
          mail_to("ann@example.org"));  // same sender again
  receive(*conn, "s2@remote.example", {"ann@example.org"}, mail_to("ann@example.org", "Precedence: bulk\r\n"));
  receive(*conn, "s3@remote.example", {"ann@example.org"},
          mail_to("ann@example.org", "Auto-Submitted: auto-generated\r\n"));
  receive(*conn, "s4@remote.example", {"ann@example.org"}, mail_to("ann@example.org", "List-Id: <x.y>\r\n"));
  receive(*conn, "s5@remote.example", {"ann@example.org"}, mail_to("undisclosed-recipients:;"));
  receive(*conn, "owner-x@remote.example", {"ann@example.org"}, mail_to("ann@example.org"));
  receive(*conn, "s6@remote.example", {"team@example.org"}, mail_to("team@example.org, ann@example.org"));
  receive(*conn, "", {"ann@example.org"}, mail_to("ann@example.org"));
  route_all(*conn);
  CHECK(replies_to(db, "s1@remote.example") == 1);
  for (const char* s : {"s2@remote.example", "s3@remote.example", "s4@remote.example", "s5@remote.example",
                        "owner-x@remote.example", "s6@remote.example"})
    CHECK(replies_to(db, s) == 0);
  CHECK(count(db, "SELECT count(*) FROM messages WHERE envelope_from = ''") ==
        2);  // the reply and the bounce we sent in
  // The reply: routed like any message (state 3 now), null sender, RFC 3834
  // headers.
  auto reply = db.query(
      "SELECT m.state, convert_from(b.data, 'UTF8') FROM messages m "
      "JOIN body_chunks b ON b.message_id = m.id "
      "JOIN recipients r ON r.message_id = m.id WHERE m.envelope_from "
      "= '' AND r.address = 's1@remote.example'");
  REQUIRE(reply.size() == 1);
  CHECK(reply[0][0].as<int>() == 3);
  auto text = reply[0][1].as<std::string>();
  CHECK(text.find("Auto-Submitted: auto-replied\r\n") != std::string::npos);
  CHECK(text.find("In-Reply-To: <q1@remote.example>\r\n") != std::string::npos);
  CHECK(text.find("Subject: Away\r\n") != std::string::npos);
  CHECK(text.find("\r\n\r\nBack on Monday.\r\n") != std::string::npos);

  SECTION("the period is per sender, and a new reply text answers everyone again") {
    pqxx::work tx(*conn);
    CHECK_FALSE(common::pg::claim_autoreply(tx, "ann@example.org", "s1@remote.example"));
    tx.exec0("UPDATE autoreply_sent SET sent_at = now() - interval '8 days'");
    CHECK(common::pg::claim_autoreply(tx, "ann@example.org", "s1@remote.example"));
    CHECK_FALSE(common::pg::claim_autoreply(tx, "ann@example.org", "s1@remote.example"));
    common::pg::set_autoreply(tx, {"ann@example.org", "Away again", "x", "", "", 3600});
    CHECK(common::pg::claim_autoreply(tx, "ann@example.org", "s1@remote.example"));
    common::pg::set_autoreply(tx, {"ann@example.org", "Later", "x", "2999-01-01 00:00:00+00", "", 3600});
    CHECK_FALSE(common::pg::claim_autoreply(tx, "ann@example.org", "s9@remote.example"));  // not active yet
    CHECK_FALSE(common::pg::claim_autoreply(tx, "bo@example.org", "s9@remote.example"));   // none configured
  }
}

TEST_CASE(
    "administration functions for lists, members, catch-alls, forwarding "
    "and auto-replies") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann", "bo"});
  pqxx::work tx(*conn);
  using namespace common::pg;

  REQUIRE(add_list(tx, {"team@example.org", "bo@example.org", "", common::PostingPolicy::moderated, "", "Team", ""}));
  auto lists = list_lists(tx, "example.org");
  REQUIRE(lists.size() == 1);
  CHECK(lists[0].bounce_address == "bo@example.org");
  CHECK(lists[0].list_id == "team.example.org");
  CHECK(lists[0].unsubscribe == "<mailto:bo@example.org?subject=unsubscribe>");
  CHECK(lists[0].policy == common::PostingPolicy::moderated);
  CHECK(list_lists(tx, "other.example").empty());
  CHECK(add_list_member(tx, "team@example.org", "ann@example.org"));
  CHECK_FALSE(add_list_member(tx, "team@example.org", "ann@example.org"));
  CHECK(add_list_member(tx, "team@example.org", "x@remote.example"));
  CHECK(list_list_members(tx, "team@example.org") == std::vector<std::string>{"ann@example.org", "x@remote.example"});
  CHECK(remove_list_member(tx, "team@example.org", "x@remote.example"));
  CHECK_FALSE(remove_list_member(tx, "team@example.org", "x@remote.example"));
  CHECK(parse_posting_policy("members") == common::PostingPolicy::members);
  CHECK_FALSE(parse_posting_policy("everyone"));

  CHECK(set_catchall(tx, "example.org", "ann@example.org"));
  CHECK_FALSE(set_catchall(tx, "example.org", "ann@example.org"));
  CHECK(set_catchall(tx, "example.org", "bo@example.org"));
  REQUIRE(list_catchalls(tx).size() == 1);
  CHECK(list_catchalls(tx)[0].target == "bo@example.org");
  CHECK(remove_catchall(tx, "example.org"));
  CHECK(list_catchalls(tx).empty());
  CHECK_FALSE(set_recipient_delimiter(tx, "nowhere.example", "-"));

  CHECK(add_forward(tx, "ann@example.org", "ann@remote.example"));
  CHECK(set_forward_keep_copy(tx, "ann@example.org", true));
  CHECK_FALSE(set_forward_keep_copy(tx, "nobody@example.org", true));
  auto fwd = list_forwards(tx, "");
  REQUIRE(fwd.size() == 1);
  CHECK(fwd[0].keep_copy);
  CHECK(remove_forward(tx, "ann@example.org", "ann@remote.example"));

  set_autoreply(tx, {"ann@example.org", "Away", "text", "2026-01-01 00:00:00+00", "", 86400});
  auto ar = list_autoreplies(tx, "example.org");
  REQUIRE(ar.size() == 1);
  CHECK(ar[0].period_seconds == 86400);
  CHECK(ar[0].ends_at.empty());
  CHECK_FALSE(ar[0].starts_at.empty());
  CHECK(remove_autoreply(tx, "ann@example.org"));
  CHECK(remove_list(tx, "team@example.org"));
  CHECK(tx.exec1("SELECT count(*) FROM list_members")[0].as<int>() == 0);
}

TEST_CASE("the schema refuses header injection through directory values") {
  TestDatabase db;
  auto conn = db.connect();
  add_directory(*conn, "example.org", {"ann"});
  pqxx::work tx(*conn);
  CHECK_THROWS(common::pg::add_list(tx, {"evil@example.org", "ann@example.org", "", common::PostingPolicy::anyone, "",
                                         "x\r\nBcc: victim@x.org", ""}));
}
