// The 8-bit decision and the message stream shared by the relay and LMTP agents
// (deliver/eightbit.h), against real stored messages: whether the body came with
// the claim, was kept from the scan, or is streamed twice (over the keep limit),
// the converted stream equals the in-memory downgrade of prepend + message; a
// peer with 8BITMIME, the 'send' policy and 7-bit mail pass bytes unchanged; the
// refusals carry the right enhanced code and name the peer.
#include <algorithm>
#include <initializer_list>
#include <utility>

#include <catch2/catch.hpp>

#include "deliver/eightbit.h"
#include "pg/transitions.h"
#include "routed_message.h"
#include "test_database.h"

using namespace wsmtp;
using namespace wsmtp::common::pg;
using namespace wsmtp::deliver;
using namespace std::chrono_literals;

namespace {

const std::string kPrepend = "Delivered-To: a@y.org\r\n";
const std::string kPeer = "LMTP server 127.0.0.1:24";

// Stores a received message as `chunks`, routes it to one LMTP recipient, and
// returns its delivery claim.
DeliveryClaim stored(pqxx::connection& conn, const std::vector<std::string>& chunks) {
  test::received_and_routed(conn, chunks, "lmtp", "/run/lmtp");
  auto claims = claim_for_delivery(conn, {.owner = "deliverer", .lease_time = 60s, .limit = 1, .max_expired_claims = 5},
                                   {"lmtp"});
  REQUIRE(claims.size() == 1);
  return std::move(claims[0]);
}

std::string streamed(pqxx::connection& conn, const DeliveryClaim& claim, const EightBitDecision& decision) {
  std::string out;
  stream_message(conn, claim, kPrepend, decision, [&](std::string_view piece) { out.append(piece); });
  return out;
}

std::string joined(const std::vector<std::string>& chunks) {
  std::string all;
  for (const auto& c : chunks) all += c;
  return all;
}

// What a 7-bit peer must get for this message: the in-memory two-pass downgrade.
std::string expected_7bit(const std::vector<std::string>& chunks) {
  std::string out;
  auto plan = common::mail::downgrade_to_7bit(kPrepend + joined(chunks), out);
  REQUIRE(plan.has_8bit);
  REQUIRE_FALSE(plan.unconvertible);
  return out;
}

bool all_7bit(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

const std::string kHeader = "Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
const std::string kLine = "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln, =equals= and a trailing space \r\n";

}  // namespace

TEST_CASE("convert: claimed, kept and twice-streamed bodies all give the in-memory downgrade") {
  test::TestDatabase db;
  auto conn = db.connect();
  const std::vector<std::string> small = {kHeader + kLine + ".dot\r\n"};
  const std::vector<std::string> two = {kHeader + kLine, kLine + "end\r\n"};
  std::vector<std::string> big = {kHeader};  // above the 1 MiB a scan keeps
  for (int i = 0; i < 20; ++i) {
    std::string chunk;
    while (chunk.size() < 60 * 1024) chunk += kLine;
    big.push_back(chunk);
  }
  for (const auto* chunks : std::initializer_list<const std::vector<std::string>*>{&small, &two, &big}) {
    auto claim = stored(*conn, *chunks);
    auto decision = decide_8bit(*conn, EightBitPolicy::convert, claim, kPrepend, false, kPeer);
    REQUIRE(decision.convert);
    CHECK_FALSE(decision.refusal);
    // Small mail comes with the claim and needs no copy; a streamed body is kept up to 1 MiB.
    CHECK(decision.body.has_value() == (chunks == &two));
    auto out = streamed(*conn, claim, decision);
    CHECK(out == expected_7bit(*chunks));
    CHECK(all_7bit(out));
    CHECK(out.size() == decision.convert->converted_size);
    CHECK(out.find("Content-Transfer-Encoding: quoted-printable\r\n") != std::string::npos);
  }
}

TEST_CASE("a peer with 8BITMIME, the send policy and 7-bit mail get the bytes unchanged, unscanned") {
  test::TestDatabase db;
  auto conn = db.connect();
  const std::vector<std::string> eight = {kHeader + kLine};
  auto claim = stored(*conn, eight);
  for (auto [policy, peer_8bitmime] : {std::pair{EightBitPolicy::bounce, true}, {EightBitPolicy::send, false}}) {
    auto decision = decide_8bit(*conn, policy, claim, kPrepend, peer_8bitmime, kPeer);
    CHECK_FALSE(decision.convert);
    CHECK_FALSE(decision.refusal);
    CHECK_FALSE(decision.body);
    CHECK(streamed(*conn, claim, decision) == kPrepend + eight[0]);
  }
  const std::vector<std::string> seven = {"Subject: s\r\n\r\nplain ascii\r\n", "second chunk\r\n"};
  auto ascii = stored(*conn, seven);
  auto decision = decide_8bit(*conn, EightBitPolicy::bounce, ascii, kPrepend, false, kPeer);
  CHECK_FALSE(decision.convert);
  CHECK_FALSE(decision.refusal);
  CHECK_FALSE(decision.body);
  CHECK(streamed(*conn, ascii, decision) == kPrepend + joined(seven));
}

TEST_CASE("refusals: 5.6.3 for the bounce policy, 5.6.9 for 8-bit headers, 5.6.5 for 8-bit base64, naming the peer") {
  test::TestDatabase db;
  auto conn = db.connect();
  auto refusal = [&](EightBitPolicy policy, const std::string& message) {
    auto claim = stored(*conn, {message});
    auto decision = decide_8bit(*conn, policy, claim, kPrepend, false, kPeer);
    CHECK_FALSE(decision.convert);
    REQUIRE(decision.refusal);
    CHECK(decision.refusal->find(kPeer + " does not support 8BITMIME") != std::string::npos);
    return decision.refusal->substr(0, 6);
  };
  CHECK(refusal(EightBitPolicy::bounce, kHeader + kLine) == "5.6.3 ");
  CHECK(refusal(EightBitPolicy::convert, "Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n\r\nbody\r\n") == "5.6.9 ");
  CHECK(refusal(EightBitPolicy::convert,
                "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n\xff\xfe\r\n") == "5.6.5 ");
}
