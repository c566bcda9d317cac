#include "pg/wakeup.h"

#include <string>

namespace wsmtp::common::pg {

void defer_wakeups(pqxx::connection_base& conn) {
  pqxx::nontransaction tx(conn);
  tx.exec0("SET wsmtp.deferred_wakeup = on");
}

void send_wakeup(pqxx::connection_base& conn, const char* channel) {
  // One round trip: the whole transaction goes as one simple-query string.
  // channel is one of our constants, never input, so it is quoted, not escaped.
  pqxx::nontransaction tx(conn);
  tx.exec0(std::string("BEGIN; SET LOCAL synchronous_commit = off; NOTIFY ") + channel + "; COMMIT");
}

}  // namespace wsmtp::common::pg
