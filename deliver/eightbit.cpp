#include "eightbit.h"

#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "claim_body.h"
#include "log.h"
#include "queue_id.h"

namespace wsmtp::deliver {
namespace {

// Bodies up to this size are kept from the downgrade scan for the encode pass
// instead of being read from the database twice.
constexpr std::size_t kMaxKeptBody = 1024 * 1024;

// Pass 1 of the 8-bit downgrade over what the peer would get: the prepended
// headers and the stored message. A body that came with the claim is in memory
// already, so only a streamed one is kept.
common::mail::DowngradePlan scan_for_downgrade(pqxx::connection& conn, const common::pg::DeliveryClaim& claim,
                                               const std::string& prepend, std::optional<std::string>& kept) {
  common::mail::DowngradeScanner scanner;
  scanner.feed(prepend);
  if (!claim.body) kept.emplace();
  stream_claim_body(conn, claim, [&](std::string_view chunk) {
    scanner.feed(chunk);
    if (!kept) return;
    if (kept->size() + chunk.size() <= kMaxKeptBody)
      kept->append(chunk);
    else
      kept.reset();
  });
  return scanner.finish();
}

EightBitDecision decide(pqxx::connection& conn, EightBitPolicy policy, const common::pg::DeliveryClaim& claim,
                        const std::string& prepend, const std::string& peer) {
  EightBitDecision decision;
  if (policy == EightBitPolicy::send) return decision;
  auto plan = scan_for_downgrade(conn, claim, prepend, decision.body);
  if (!plan.has_8bit) {
    decision.body.reset();
    return decision;
  }
  if (policy == EightBitPolicy::bounce)
    decision.refusal = fmt::format("5.6.3 {} does not support 8BITMIME and the message has 8-bit content", peer);
  else if (plan.unconvertible)
    // X.6.9 (RFC 6531): UTF-8 headers; X.6.5 (RFC 3463): conversion failed.
    decision.refusal = fmt::format("{} {} does not support 8BITMIME and the message cannot be converted to 7 bit: {}",
                                   plan.header_8bit ? "5.6.9" : "5.6.5", peer, plan.problem);
  else
    decision.convert = std::move(plan);
  if (decision.refusal) decision.body.reset();
  return decision;
}

}  // namespace

EightBitDecision decide_8bit(pqxx::connection& conn, EightBitPolicy policy, const common::pg::DeliveryClaim& claim,
                             const std::string& prepend, bool peer_8bitmime, const std::string& peer) {
  // RFC 6152: a peer with 8BITMIME takes any body; only one without makes us look.
  if (peer_8bitmime) return {};
  auto decision = decide(conn, policy, claim, prepend, peer);
  const auto msg_id = claim.lease.msg_id;
  if (decision.refusal)
    log::info("msg={} 8-bit content refused for every recipient: {}", common::qid(msg_id), *decision.refusal);
  else if (decision.convert)
    log::info("msg={} converted to 7 bit for {} ({} MIME parts quoted-printable)", common::qid(msg_id), peer,
              decision.convert->convert.size());
  return decision;
}

void stream_message(pqxx::connection& conn, const common::pg::DeliveryClaim& claim, const std::string& prepend,
                    const EightBitDecision& decision, const common::smtp::ChunkSink& sink) {
  if (!decision.convert) {
    if (!prepend.empty()) sink(prepend);
    stream_claim_body(conn, claim, sink);
    return;
  }
  common::mail::DowngradeEncoder encoder(*decision.convert);
  std::string out;
  auto convert = [&](std::string_view chunk) {
    out.clear();
    encoder.feed(chunk, out);
    if (!out.empty()) sink(out);
  };
  convert(prepend);
  if (decision.body)
    convert(*decision.body);
  else
    stream_claim_body(conn, claim, convert);
  out.clear();
  encoder.finish(out);
  sink(out);
}

}  // namespace wsmtp::deliver
