// The listener's Store on PostgreSQL: one connection, reconnected on the next
// call after a failure (that call's message gets 451 and the client retries).
#pragma once

#include <memory>
#include <string>

#include "store.h"

namespace wsmtp::common::pg {

std::unique_ptr<Store> make_pg_store(const std::string& conninfo);

}  // namespace wsmtp::common::pg
