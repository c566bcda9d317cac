// Per-destination admission for one delivery pass: the concurrency slots the
// worker takes for the destinations of its batch (deliver/db/destinations.h),
// and what the pass's results say about each destination as a whole (its
// verdict, and the retry time of a destination backed off meanwhile). Knows
// no transport's details: a destination is a delivery row's (transport,
// destination), a destination-level failure a flag on a result.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <vector>

#include <pqxx/pqxx>

#include "db/destinations.h"
#include "pg/claim_types.h"
#include "pg/transitions.h"

namespace wsmtp::deliver {

common::pg::Destination destination_of(const common::pg::DeliveryTask& task);

class DestinationGate {
 public:
  // Takes one slot of each destination of the claims' tasks, in one
  // statement; limit_of gives a transport's limit. Throws pqxx errors.
  DestinationGate(pqxx::connection& conn, const std::vector<common::pg::DeliveryClaim>& claims,
                  const std::function<int(const std::string&)>& limit_of);
  // Releases what is still held; a failure is logged (a broken connection
  // has dropped the slots with it).
  ~DestinationGate();
  DestinationGate(const DestinationGate&) = delete;
  DestinationGate& operator=(const DestinationGate&) = delete;

  // True if this pass holds a slot of the task's destination.
  bool admits(const common::pg::DeliveryTask& task) const;
  // Releases, in one statement, the held slots whose destination `which`
  // selects. Throws pqxx errors.
  void release(const std::function<bool(const common::pg::Destination&)>& which);
  std::size_t held() const { return held_.size(); }

 private:
  pqxx::connection& conn_;
  std::vector<common::pg::HeldSlot> held_;
};

// One verdict per destination with results: failed if any of its results
// says the destination failed as a whole, a success otherwise. task_of maps
// a result's delivery id to its task.
std::vector<common::pg::DestinationVerdict> destination_verdicts(
    const std::vector<common::pg::DeliveryResult>& results,
    const std::function<const common::pg::DeliveryTask&(std::int64_t)>& task_of);

// Deferred results for a destination in backed_off are retried no earlier
// than the end of its backoff.
void defer_past_backoff(std::vector<common::pg::DeliveryResult>& results,
                        const std::map<common::pg::Destination, std::chrono::seconds>& backed_off,
                        const std::function<const common::pg::DeliveryTask&(std::int64_t)>& task_of);

}  // namespace wsmtp::deliver
