#include "claim_body.h"

#include "pg/body.h"

namespace wsmtp::deliver {

void stream_claim_body(pqxx::connection& conn, const common::pg::DeliveryClaim& claim,
                       const std::function<void(std::string_view)>& sink) {
  if (claim.body) {
    sink(*claim.body);
    return;
  }
  pqxx::nontransaction tx(conn);  // chunks never change once received: no snapshot needed
  common::pg::read_body(tx, claim.lease.msg_id, sink);
}

}  // namespace wsmtp::deliver
