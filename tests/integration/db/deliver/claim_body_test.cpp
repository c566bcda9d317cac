// A delivery claim carries the stored message when it is one small chunk (one
// query per batch instead of one per copy); a bigger message is left to be
// streamed. Either way every transport gets the same bytes.
#include <catch2/catch.hpp>

#include "deliver/claim_body.h"
#include "pg/transitions.h"
#include "routed_message.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace std::chrono_literals;

namespace {

std::string streamed(pqxx::connection& conn, const DeliveryClaim& claim) {
  std::string out;
  deliver::stream_claim_body(conn, claim, [&](std::string_view piece) { out.append(piece); });
  return out;
}

}  // namespace

TEST_CASE("small bodies come with the claim, byte for byte; multi-chunk and big ones are streamed") {
  test::TestDatabase db;
  auto conn = db.connect();
  const std::string small("Subject: s\r\n\r\nbinary \0\xff\x80 bytes\r\n", 33);
  const std::string big_one(70 * 1024, 'b');  // one chunk, above what a claim carries
  const std::vector<std::string> two = {"Subject: two\r\n\r\nfirst half ", "second half\r\n"};
  test::received_and_routed(*conn, {small}, "maildir", "/var/mail/a");
  test::received_and_routed(*conn, {big_one}, "maildir", "/var/mail/a");
  test::received_and_routed(*conn, two, "maildir", "/var/mail/a");

  auto claims = claim_for_delivery(
      *conn, {.owner = "deliverer", .lease_time = 60s, .limit = 10, .max_expired_claims = 5}, {"maildir"});
  REQUIRE(claims.size() == 3);
  REQUIRE(claims[0].body);
  CHECK(*claims[0].body == small);
  CHECK(claims[0].size == static_cast<std::int64_t>(small.size()));
  CHECK_FALSE(claims[1].body);
  CHECK(claims[1].size == static_cast<std::int64_t>(big_one.size()));
  CHECK_FALSE(claims[2].body);

  CHECK(streamed(*conn, claims[0]) == small);
  CHECK(streamed(*conn, claims[1]) == big_one);
  CHECK(streamed(*conn, claims[2]) == two[0] + two[1]);
}
