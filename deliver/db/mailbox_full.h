// The deliverer's record of which mailboxes are full (schema 019): what the
// listener reads to refuse RCPT with 452 4.2.2 instead of queueing mail that
// can only wait. Knows nothing of Maildirs or quotas, only the addresses.
#pragma once

#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// Marks `full` (mailbox lookup keys whose copy did not fit) as over quota now
// and clears the mark of `fitted` (whose copy was delivered). Writes only rows
// whose mark changes (or, for `full`, is older than ten minutes): one or two
// indexed statements, none for empty lists. Own transaction on conn. Throws
// pqxx errors.
void record_mailbox_fullness(pqxx::connection& conn, const std::vector<std::string>& full,
                             const std::vector<std::string>& fitted);

}  // namespace wsmtp::common::pg
