// 8-bit mail for a peer that does not advertise 8BITMIME (RFC 6152 §3), shared
// by the relay and LMTP agents: per the policy, the message goes as it is, is
// converted to 7 bit (mime_downgrade.h), or is refused; and the message
// as the peer gets it, converted or not. Knows nothing of SMTP sessions: the
// caller says whether its peer takes 8-bit and names the peer for the texts.
#pragma once

#include <optional>
#include <string>

#include <pqxx/pqxx>

#include "config.h"
#include "mime_downgrade.h"
#include "pg/transitions.h"
#include "smtp_client.h"

namespace wsmtp::deliver {

// What the peer gets: no plan to send the message as it is (7-bit already, the
// peer takes 8-bit, or the policy is 'send'), a plan to convert it, or a refusal
// (the policy bounces 8-bit mail, or it cannot be converted).
struct EightBitDecision {
  std::optional<common::mail::DowngradePlan> convert;
  std::optional<std::string> refusal;  // "5.6.x <text>", for every recipient of the transaction
  std::optional<std::string> body;     // the stored message, kept from the scan when small and streamed
};

// Decides for a peer named `peer` (e.g. "relay 192.0.2.1:25", used in refusal and
// log texts) whose EHLO/LHLO did or did not offer 8BITMIME. Only a peer without
// it and a policy other than 'send' make us read the message: the prepended
// headers plus the stored message are scanned. A conversion or refusal is logged
// once with msg=<id>. Throws what reading the body throws (pqxx errors).
EightBitDecision decide_8bit(pqxx::connection& conn, EightBitPolicy policy, const common::pg::DeliveryClaim& claim,
                             const std::string& prepend, bool peer_8bitmime, const std::string& peer);

// Feeds the message as the peer gets it to `sink`: the prepended headers, then
// the stored message (from the claim, the decision's kept copy, or streamed from
// the database), converted to 7 bit when the decision says so. Throws what
// reading the body throws.
void stream_message(pqxx::connection& conn, const common::pg::DeliveryClaim& claim, const std::string& prepend,
                    const EightBitDecision& decision, const common::smtp::ChunkSink& sink);

}  // namespace wsmtp::deliver
