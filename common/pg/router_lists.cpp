#include "pg/router_lists.h"

namespace wsmtp::common::pg {

const char* const kBulkRoutableMember =
    "((mb.address IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mailbox_forwards f "
    "WHERE f.address = mb.address)) "
    " OR (mb.address IS NULL "
    "     AND NOT EXISTS (SELECT 1 FROM domains d WHERE d.name = "
    "substring(lm.member from '@([^@]*)$')) "
    "     AND substring(lm.member from '@([^@]*)$') NOT LIKE '[%'))";

int insert_list_fanout(pqxx::transaction_base& tx, std::int64_t msg_id, const ListFanout& f) {
  auto r = tx.exec_params(std::string("INSERT INTO deliveries (message_id, recipient, original_rcpt, "
                                      "transport, destination, "
                                      "                        prepend_headers, envelope_from_override) "
                                      "SELECT $1, lm.member, $3, COALESCE(mb.transport, 'relay'), "
                                      "COALESCE(mb.maildir, $4), $5, $6 "
                                      "FROM list_members lm LEFT JOIN mailboxes mb ON mb.address = "
                                      "lm.member "
                                      "WHERE lm.list_address = $2 AND ") +
                              kBulkRoutableMember +
                              " ON CONFLICT (message_id, recipient, transport, destination) DO "
                              "NOTHING",
                          msg_id, f.list_address, f.original_rcpt, f.relay_pool, f.prepend_headers, f.envelope_from);
  return static_cast<int>(r.affected_rows());
}

}  // namespace wsmtp::common::pg
