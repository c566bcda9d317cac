// Queuing DSNs (RFC 3464) for the deliverer's finish: reads what a report needs
// (the bounced or pending deliveries, the sender, the original headers), composes
// it with common/dsn.h and creates it as a generated message (state 1) in the
// caller's transaction, so a report exists exactly when the result it reports
// commits. Never reports to the null sender (RFC 5321 §4.5.5, no bounce loops).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// Failure reports for every bounced delivery of msg_id not yet reported
// (router refusals included), one per reverse path: the message's sender, or
// for a list's copies the list's bounce address. Marks them reported
// (deliveries.dsn_message_id). Returns the id of the report to the message's
// own sender; nullopt if there is none. Nothing is sent or marked for a
// reverse path of <> (a report to <> could never be delivered).
std::optional<std::int64_t> queue_failure_dsn(pqxx::transaction_base& tx, std::int64_t msg_id,
                                              const std::string& reporting_mta);

// The one delay warning for msg_id, listing its pending deliveries, if the
// message is older than warn_after and none was sent yet (messages.delay_warned_at).
std::optional<std::int64_t> queue_delay_warning(pqxx::transaction_base& tx, std::int64_t msg_id,
                                                const std::string& reporting_mta, std::chrono::seconds warn_after);

}  // namespace wsmtp::common::pg
