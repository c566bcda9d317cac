// The per-stage protocol rules as a table: which SMFIP_* bit turns a stage
// off or silences its reply, which timeout applies, how macro lists filter,
// and which SMFIF_* each modification needs.
#include <catch2/catch.hpp>

#include <chrono>

#include "milter/stage_rules.h"

namespace wsmtp::listener::milter {

using namespace std::chrono_literals;

TEST_CASE("milter stage rules: SMFIP_NO* and SMFIP_NR_* per stage", "[milter]") {
  struct Row {
    Stage stage;
    std::uint32_t off;
    std::uint32_t no_reply;
  };
  const Row row = GENERATE(values<Row>({
      {Stage::connect, step::no_connect, step::no_reply_connect},
      {Stage::helo, step::no_helo, step::no_reply_helo},
      {Stage::mail, step::no_mail, step::no_reply_mail},
      {Stage::rcpt, step::no_rcpt, step::no_reply_rcpt},
      {Stage::data, step::no_data, step::no_reply_data},
      {Stage::header, step::no_headers, step::no_reply_header},
      {Stage::end_of_headers, step::no_end_of_headers, step::no_reply_end_of_headers},
      {Stage::body, step::no_body, step::no_reply_body},
  }));
  CAPTURE(stage_name(row.stage));
  Negotiation n;
  CHECK_FALSE(stage_off(row.stage, n));
  CHECK(stage_answered(row.stage, n));
  n.steps = step::all_we_offer & ~row.off & ~row.no_reply;
  CHECK_FALSE(stage_off(row.stage, n));  // only its own bit counts
  CHECK(stage_answered(row.stage, n));
  n.steps = row.off;
  CHECK(stage_off(row.stage, n));
  n.steps = row.no_reply;
  CHECK_FALSE(stage_answered(row.stage, n));
}

TEST_CASE("milter stage rules: end of message and abort", "[milter]") {
  Negotiation n;
  n.steps = step::all_we_offer;
  CHECK_FALSE(stage_off(Stage::end_of_message, n));
  CHECK(stage_answered(Stage::end_of_message, n));
  CHECK_FALSE(stage_off(Stage::abort, n));
  CHECK_FALSE(stage_answered(Stage::abort, Negotiation{}));
}

TEST_CASE("milter stage rules: command and content timeouts", "[milter]") {
  MilterSpec spec;
  spec.command_timeout = 1s;
  spec.content_timeout = 2s;
  for (Stage s : {Stage::connect, Stage::helo, Stage::mail, Stage::rcpt, Stage::data, Stage::abort}) {
    CHECK(stage_timeout(s, spec) == 1s);
  }
  for (Stage s : {Stage::header, Stage::end_of_headers, Stage::body, Stage::end_of_message}) {
    CHECK(stage_timeout(s, spec) == 2s);
  }
}

TEST_CASE("milter stage rules: SETSYMLIST filters the macros, braces optional", "[milter]") {
  const Macros all = {{"j", "mx"}, {"{client_addr}", "192.0.2.1"}, {"i", "Q1"}, {"{auth_type}", "PLAIN"}};
  CHECK(wanted_macros(all, std::nullopt) == all);
  CHECK(wanted_macros(all, std::string("client_addr {i}  {nothing}")) ==
        Macros{{"{client_addr}", "192.0.2.1"}, {"i", "Q1"}});
  CHECK(wanted_macros(all, std::string("")).empty());
}

TEST_CASE("milter stage rules: the header value each milter gets", "[milter]") {
  Event header;
  header.stage = Stage::header;
  header.text = "Subject";
  header.value = " a\r\n\tb";
  Negotiation plain;
  CHECK(stage_packets(header, plain) == encode_header("Subject", "a\n\tb"));
  Negotiation leading;
  leading.steps = step::header_leading_space;
  CHECK(stage_packets(header, leading) == encode_header("Subject", " a\n\tb"));
}

TEST_CASE("milter stage rules: each modification needs its SMFIF_* action", "[milter]") {
  struct Row {
    Reply::Kind kind;
    std::uint32_t action;
  };
  const Row row = GENERATE(values<Row>({
      {Reply::Kind::add_header, action::add_headers},
      {Reply::Kind::insert_header, action::add_headers},
      {Reply::Kind::change_header, action::change_headers},
      {Reply::Kind::add_rcpt, action::add_rcpt},
      {Reply::Kind::add_rcpt_with_args, action::add_rcpt_with_args},
      {Reply::Kind::delete_rcpt, action::delete_rcpt},
      {Reply::Kind::change_from, action::change_from},
      {Reply::Kind::replace_body, action::change_body},
      {Reply::Kind::quarantine, action::quarantine},
  }));
  CHECK(modification_allowed(row.kind, row.action));
  CHECK_FALSE(modification_allowed(row.kind, action::all & ~row.action));
  CHECK_FALSE(modification_allowed(Reply::Kind::continue_, action::all));
}

}  // namespace wsmtp::listener::milter
