// libmilter's header and envelope changes on a stored header section.
#include <catch2/catch.hpp>

#include "milter/message_edit.h"

namespace wsmtp::listener::milter {
namespace {
Reply header_change(Reply::Kind kind, std::string name, std::string value, std::uint32_t index = 0) {
  Reply r;
  r.kind = kind;
  r.name = std::move(name);
  r.value = std::move(value);
  r.index = index;
  return r;
}
}  // namespace

TEST_CASE("header fields keep their folds; values are what milters are sent", "[milter][edit]") {
  auto h = HeaderSection::parse("Received: from a\r\n\tby b\r\nSubject:  two spaces\r\n\r\n");
  REQUIRE(h.fields().size() == 2);
  CHECK(h.fields()[0].name == "Received");
  CHECK(h.fields()[0].value() == " from a\r\n\tby b");
  CHECK(h.fields()[1].value() == "  two spaces");
  CHECK(h.str() == "Received: from a\r\n\tby b\r\nSubject:  two spaces\r\n\r\n");
}

TEST_CASE("add, insert, change and delete headers as libmilter defines them", "[milter][edit]") {
  auto h = HeaderSection::parse("A: 1\r\nB: 2\r\nA: 3\r\n\r\n");
  h.apply(header_change(Reply::Kind::add_header, "X-Added", "folded\n\tvalue"));
  h.apply(header_change(Reply::Kind::insert_header, "X-Top", "0", 0));
  h.apply(
      header_change(Reply::Kind::change_header, "a", "three", 2));  // the second A, any case; named as the milter does
  h.apply(header_change(Reply::Kind::change_header, "B", "", 1));   // deleted
  h.apply(header_change(Reply::Kind::change_header, "C", "new", 1));  // not there: added
  h.apply(header_change(Reply::Kind::change_header, "D", "", 1));     // not there: nothing
  h.apply(header_change(Reply::Kind::insert_header, "X-End", "e", 99));
  CHECK(h.str() == "X-Top: 0\r\nA: 1\r\na: three\r\nX-Added: folded\r\n\tvalue\r\nC: new\r\nX-End: e\r\n\r\n");
}

TEST_CASE("envelope changes: sender, recipients added once, deleted ignoring case", "[milter][edit]") {
  std::string sender = "a@example.net";
  std::vector<std::string> rcpts{"alice@example.org", "bob@example.org"};
  Reply r;
  r.kind = Reply::Kind::change_from;
  r.address = "<>";
  apply_envelope_change(r, sender, rcpts);
  CHECK(sender.empty());
  r.kind = Reply::Kind::add_rcpt;
  r.address = "<carol@example.org>";
  apply_envelope_change(r, sender, rcpts);
  apply_envelope_change(r, sender, rcpts);
  r.kind = Reply::Kind::delete_rcpt;
  r.address = "<BOB@example.org>";
  apply_envelope_change(r, sender, rcpts);
  CHECK(rcpts == std::vector<std::string>{"alice@example.org", "carol@example.org"});
}

TEST_CASE("a replacement body gets CRLF line ends only", "[milter][edit]") {
  CHECK(normalize_line_ends("a\nb\r\nc\rd") == "a\r\nb\r\nc\r\nd");
}

}  // namespace wsmtp::listener::milter
