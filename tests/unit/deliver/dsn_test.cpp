// The RFC 3464 report composer (common/dsn.h): status extraction from the
// different detail forms, header-section cutting, and the report's structure.
#include "dsn.h"

#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace wsmtp::common::dsn;

TEST_CASE("status comes from the enhanced code, else from the reply class, else the action") {
  CHECK(status_of("550 5.1.1 <a@b>: no such user", Action::failed) == "5.1.1");
  CHECK(status_of("552-5.2.2 over quota", Action::failed) == "5.2.2");
  CHECK(status_of("554 transaction failed", Action::failed) == "5.0.0");
  CHECK(status_of("451 try later", Action::delayed) == "4.0.0");
  CHECK(status_of("5.4.6 alias loop detected", Action::failed) == "5.4.6");
  CHECK(status_of("4.4.7 delivery time expired; last error: x", Action::failed) == "4.4.7");
  CHECK(status_of("disk on fire", Action::failed) == "5.0.0");
  CHECK(status_of("5.1 not a code", Action::failed) == "5.0.0");
}

TEST_CASE("a remote enhanced code of the wrong class does not become the report's status") {
  CHECK(status_of("550 2.0.0 odd server", Action::failed) == "5.0.0");
  CHECK(status_of("550 4.2.2 mailbox full", Action::failed) == "5.0.0");
  CHECK(status_of("451 5.7.1 later", Action::delayed) == "4.0.0");
  CHECK(status_of("2.1.5 ok", Action::failed) == "5.0.0");
  CHECK(status_of("250 ok", Action::failed) == "5.0.0");
  CHECK(status_of("999 what", Action::delayed) == "4.0.0");
}

TEST_CASE("the header section ends at the first empty line, CRLF or LF, and is capped at a line end") {
  CHECK(header_section("A: 1\r\nB: 2\r\n\r\nbody\r\n") == "A: 1\r\nB: 2\r\n");
  CHECK(header_section("A: 1\nB: 2\n\nbody\n") == "A: 1\nB: 2\n");
  CHECK(header_section("A: 1\r\nB: 2\r\n") == "A: 1\r\nB: 2\r\n");
  CHECK(header_section("A: 1\r\nB: 2222\r\nC: 3\r\n\r\n", 12) == "A: 1\r\n");
  // A line end just past the cap does not count: the result never exceeds it.
  CHECK(header_section("AB\nCD\n", 2) == "");
  CHECK(header_section("AB\nCD\n", 3) == "AB\n");
  CHECK(header_section("AB\nCD\n", 0) == "");
}

TEST_CASE("a failure report is a 7-bit multipart/report with the three parts in order") {
  Report r;
  r.reporting_mta = "mx.example.test";
  r.recipient = "s@x.org";
  r.msg_id = 42;
  r.arrival = 0;
  r.now = 86400;
  r.recipients = {{"b@y.org", "", "550 5.1.1 unknown\xff\r\nSecond: line", 3600}};
  r.original_headers = "Subject: caf\xc3\xa9\nFrom: s@x.org\n";
  auto out = compose(r);
  CHECK(out.find("Date: Fri, 02 Jan 1970 00:00:00 +0000\r\n") != std::string::npos);
  CHECK(out.find("Final-Recipient: rfc822; b@y.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                 "Diagnostic-Code: smtp; 550 5.1.1 unknown?? Second: line\r\n"
                 "Last-Attempt-Date: Thu, 01 Jan 1970 01:00:00 +0000\r\n") != std::string::npos);
  CHECK(out.find("Original-Recipient") == std::string::npos);
  CHECK(out.find("Subject: caf??\r\nFrom: s@x.org\r\n") != std::string::npos);
  auto human = out.find("Content-Description: Notification");
  auto status = out.find("Content-Type: message/delivery-status");
  auto headers = out.find("Content-Type: text/rfc822-headers");
  CHECK(human < status);
  CHECK(status < headers);
  for (char c : out) CHECK(static_cast<unsigned char>(c) < 0x80);
  // Every line ends in CRLF: no bare LF or CR anywhere.
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\n') REQUIRE((i > 0 && out[i - 1] == '\r'));
    if (out[i] == '\r') REQUIRE((i + 1 < out.size() && out[i + 1] == '\n'));
  }
  CHECK(out.substr(out.size() - 4) == "--\r\n");
}

namespace {
Report boundary_report(std::string original_headers) {
  Report r;
  r.reporting_mta = "mx.example.test";
  r.recipient = "s@x.org";
  r.msg_id = 42;
  r.now = 86400;
  r.recipients = {{"b@y.org", "", "550 5.1.1 unknown", 3600}};
  r.original_headers = std::move(original_headers);
  return r;
}

std::string boundary_of(const std::string& dsn) {
  const std::string key = "boundary=\"";
  auto start = dsn.find(key);
  REQUIRE(start != std::string::npos);
  start += key.size();
  return dsn.substr(start, dsn.find('"', start) - start);
}
}  // namespace

TEST_CASE("the MIME boundary is random: two reports on the same message differ") {
  const auto r = boundary_report("Subject: x\r\n");
  const auto first = boundary_of(compose(r));
  const auto second = boundary_of(compose(r));
  CHECK(first != second);
  // "=_" and 128 random bits in hex: nothing taken from the message (its id,
  // time or host), which a sender could predict. (A check that the id's digits
  // do not occur would fail by chance one run in eight.)
  CHECK(std::regex_match(first, std::regex("=_[0-9a-f]{32}")));
  CHECK(std::regex_match(second, std::regex("=_[0-9a-f]{32}")));
}

TEST_CASE("a boundary found in the original message is drawn again") {
  // The sender planted what the source draws first: that one must not be used.
  const auto r = boundary_report("Subject: x\r\nX-Trap: --=_planted\r\n");
  std::vector<std::string> draws = {"=_planted", "=_fresh"};
  std::size_t drawn = 0;
  const auto out = compose(r, [&] { return draws.at(drawn++); });
  CHECK(drawn == 2);
  CHECK(boundary_of(out) == "=_fresh");
  // The planted text is still there, as content; the delimiter lines use the fresh boundary.
  CHECK(out.find("--=_fresh--\r\n") != std::string::npos);
  CHECK(out.find("\r\n--=_planted") == std::string::npos);
}
