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

// Fills tasks (pending, due, on `transports`, to an open destination) and,
// within a memory budget per batch, body of each claim.
void load_claimed_work(pqxx::transaction_base& tx, std::vector<DeliveryClaim>& claims,
                       const std::vector<std::string>& transports, const DestinationLimits& limits = {});

// SQL condition on the deliveries row `alias`: its destination is open, i.e.
// not every slot of it is held (the DestinationLimits passed as parameters
// $names_param::text[] and $limits_param::int[]) and it is not backed off.
// The saturated set is read from pg_locks once per statement (an InitPlan).
std::string open_destination_filter(const std::string& alias, int names_param, int limits_param);

}  // namespace wsmtp::common::pg
