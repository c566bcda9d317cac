#include "destination_gate.h"

#include <algorithm>
#include <set>
#include <utility>

#include "log.h"

namespace wsmtp::deliver {

using common::pg::DeliveryResult;
using common::pg::DeliveryStatus;
using common::pg::Destination;

Destination destination_of(const common::pg::DeliveryTask& task) { return {task.transport, task.destination}; }

DestinationGate::DestinationGate(pqxx::connection& conn, const std::vector<common::pg::DeliveryClaim>& claims,
                                 const std::function<int(const std::string&)>& limit_of)
    : conn_(conn) {
  std::set<Destination> wanted;
  for (const auto& claim : claims)
    for (const auto& task : claim.tasks) wanted.insert(destination_of(task));
  std::vector<common::pg::SlotRequest> requests;
  for (const auto& d : wanted) requests.push_back({d, limit_of(d.transport)});
  held_ = common::pg::acquire_destination_slots(conn_, requests);
  if (held_.size() < requests.size())
    log::info("{} of {} destinations of the batch have every slot taken; their deliveries wait",
              requests.size() - held_.size(), requests.size());
}

DestinationGate::~DestinationGate() {
  try {
    common::pg::release_destination_slots(conn_, held_);
  } catch (const std::exception& e) {
    log::warn("releasing {} destination slots failed: {}", held_.size(), e.what());
  }
}

bool DestinationGate::admits(const common::pg::DeliveryTask& task) const {
  const auto d = destination_of(task);
  return std::any_of(held_.begin(), held_.end(), [&d](const common::pg::HeldSlot& s) { return s.destination == d; });
}

void DestinationGate::release(const std::function<bool(const Destination&)>& which) {
  std::vector<common::pg::HeldSlot> going, staying;
  for (auto& s : held_) (which(s.destination) ? going : staying).push_back(std::move(s));
  held_ = std::move(staying);
  common::pg::release_destination_slots(conn_, going);
}

std::vector<common::pg::DestinationVerdict> destination_verdicts(
    const std::vector<DeliveryResult>& results,
    const std::function<const common::pg::DeliveryTask&(std::int64_t)>& task_of) {
  std::map<Destination, common::pg::DestinationVerdict> by_destination;
  for (const auto& r : results) {
    const auto d = destination_of(task_of(r.delivery_id));
    auto& v = by_destination.try_emplace(d, common::pg::DestinationVerdict{d, false, {}}).first->second;
    if (r.destination_failed && !v.failed) {
      v.failed = true;
      v.error = r.detail;
    }
  }
  std::vector<common::pg::DestinationVerdict> out;
  for (auto& [d, v] : by_destination) out.push_back(std::move(v));
  return out;
}

void defer_past_backoff(std::vector<DeliveryResult>& results,
                        const std::map<Destination, std::chrono::seconds>& backed_off,
                        const std::function<const common::pg::DeliveryTask&(std::int64_t)>& task_of) {
  if (backed_off.empty()) return;
  for (auto& r : results) {
    if (r.status != DeliveryStatus::deferred) continue;
    auto it = backed_off.find(destination_of(task_of(r.delivery_id)));
    if (it != backed_off.end()) r.retry_after = std::max(r.retry_after, it->second);
  }
}

}  // namespace wsmtp::deliver
