// Vacation replies (schema 003 autoreplies / autoreply_sent): whether a
// mailbox's reply is due for a sender, decided and recorded in one statement so
// two routers handling mail from the same sender at once send one reply.
#pragma once

#include <optional>
#include <string>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

struct AutoReplyText {
  std::string subject;
  std::string body;
};

// If mailbox has an auto-reply active now and it has not answered sender within
// its period (or since the current reply was set up), records the reply as
// sent now and returns its text; otherwise nullopt. In the caller's
// transaction: the record exists exactly when the reply message does.
std::optional<AutoReplyText> claim_autoreply(pqxx::transaction_base& tx, const std::string& mailbox,
                                             const std::string& sender);

}  // namespace wsmtp::common::pg
