#include "db/autoreplies.h"

namespace wsmtp::common::pg {

std::optional<AutoReplyText> claim_autoreply(pqxx::transaction_base& tx, const std::string& mailbox,
                                             const std::string& sender) {
  // ON CONFLICT ... DO UPDATE ... WHERE takes the row lock and re-checks the
  // condition on the latest row version, so concurrent routers agree.
  auto rows = tx.exec_params(
      "WITH a AS (SELECT address, subject, body, period, starts_at FROM "
      "autoreplies "
      "           WHERE address = $1 AND now() >= starts_at AND now() < "
      "ends_at), "
      "sent AS (INSERT INTO autoreply_sent AS s (address, sender, sent_at) "
      "         SELECT address, $2, now() FROM a "
      "         ON CONFLICT (address, sender) DO UPDATE SET sent_at = now() "
      "         WHERE s.sent_at <= now() - (SELECT period FROM autoreplies "
      "WHERE address = $1) "
      "            OR s.sent_at < (SELECT starts_at FROM autoreplies WHERE "
      "address = $1) "
      "         RETURNING 1) "
      "SELECT subject, body FROM a WHERE EXISTS (SELECT 1 FROM sent)",
      mailbox, sender);
  if (rows.empty()) return std::nullopt;
  return AutoReplyText{rows[0][0].as<std::string>(), rows[0][1].as<std::string>()};
}

}  // namespace wsmtp::common::pg
