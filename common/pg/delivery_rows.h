// What a delivery claim comes with: each claimed message's due deliveries for
// the deliverer's transports, and the stored message itself when it is small,
// read inside the claim's transaction so that a batch costs a fixed number of
// round trips however many messages and copies it holds.
#pragma once
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "pg/claim_types.h"

namespace wsmtp::common::pg {

// Fills tasks (pending, due, on `transports`) and, within a memory budget per
// batch, body of each claim.
void load_claimed_work(pqxx::transaction_base& tx, std::vector<DeliveryClaim>& claims,
                       const std::vector<std::string>& transports);

}  // namespace wsmtp::common::pg
