#include "db/mailbox_full.h"

#include "pg/prepared.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {

void record_mailbox_fullness(pqxx::connection& conn, const std::vector<std::string>& full,
                             const std::vector<std::string>& fitted) {
  if (full.empty() && fitted.empty()) return;
  pqxx::work tx(conn);
  // Refreshed every ten minutes while deliveries keep finding it full, so the
  // listener's one-hour window (019) stays open only while that is true.
  if (!full.empty())
    exec_prepared_sql(tx, "wsmtp_deliver_mark_full",
                      "UPDATE mailboxes SET over_quota_seen = now() WHERE address = ANY($1::text[]) "
                      "AND (over_quota_seen IS NULL OR over_quota_seen < now() - interval '10 minutes')",
                      text_array(full));
  if (!fitted.empty())
    exec_prepared_sql(tx, "wsmtp_deliver_mark_fitted",
                      "UPDATE mailboxes SET over_quota_seen = NULL "
                      "WHERE address = ANY($1::text[]) AND over_quota_seen IS NOT NULL",
                      text_array(fitted));
  tx.commit();
}

}  // namespace wsmtp::common::pg
