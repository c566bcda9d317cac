// Reports for recipients the router refuses inside a mailing list's fan-out
// (an unknown local member, an alias loop under a member, a nested list with
// no members): they go to the list's bounce address, the envelope sender the
// list's copies carry, not to the poster, who did nothing wrong. The report is
// an RFC 3464 DSN created as a new message (state 1) in the routing
// transaction, and the refused rows are marked reported so the deliverer's
// report to the poster leaves them out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

struct ListBounce {
  std::string recipient;      // the refused member (lookup form)
  std::string original_rcpt;  // the envelope recipient that reached the list
  std::string reason;         // enhanced status code and text
};

// Queues one DSN to bounce_address covering bounces of msg_id, and marks the
// message's unreported router bounces addressed to bounce_address as reported
// by it (deliveries.envelope_from_override = bounce_address). Call after the
// plan is written (finish_routing). Returns the DSN's message id. Throws
// database errors.
std::int64_t queue_list_bounce_report(pqxx::transaction_base& tx, std::int64_t msg_id,
                                      const std::string& bounce_address, const std::vector<ListBounce>& bounces,
                                      const std::string& reporting_mta);

}  // namespace wsmtp::common::pg
