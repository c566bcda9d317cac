// The listener's Store on PostgreSQL: one connection, reconnected on the next
// call after a failure (that call's message gets 451 and the client retries).
#pragma once

#include <memory>
#include <string>

#include "db/wakeup.h"
#include "store.h"

namespace wsmtp::common::pg {

// waker (required) sends the router's wake-up after each commit from its own
// thread; one is shared by all of a listener's stores.
std::unique_ptr<Store> make_pg_store(const std::string& conninfo, std::shared_ptr<WakeupSender> waker);

}  // namespace wsmtp::common::pg
