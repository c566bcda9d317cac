// The deliverer's per-destination state in the database (schema 021): the
// concurrency slots it takes on its own connection (session advisory locks,
// gone with the connection if the worker dies) and the backoff of
// destinations that fail as a whole. Knows no transport; a destination is a
// (transport, destination) pair as in the deliveries rows.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

struct Destination {
  std::string transport;
  std::string destination;
  auto operator<=>(const Destination&) const = default;
};

// One slot to take: a destination and its transport's limit.
struct SlotRequest {
  Destination destination;
  int limit = 1;
};

// A slot held by this session.
struct HeldSlot {
  Destination destination;
  int slot = 0;
};

// Tries to take one free slot of each requested destination (slot numbers
// 0..limit-1, the first free one), in one statement outside any transaction.
// Returns the slots taken; a destination with every slot held by others is
// left out. Throws pqxx errors.
std::vector<HeldSlot> acquire_destination_slots(pqxx::connection& conn, const std::vector<SlotRequest>& requests);

// Releases slots this session holds, in one statement. Throws pqxx errors.
void release_destination_slots(pqxx::connection& conn, const std::vector<HeldSlot>& slots);

// What a delivery pass found of one destination as a whole.
struct DestinationVerdict {
  Destination destination;
  bool failed = false;  // failed as a whole (unreachable, unwritable), not one message
  std::string error;    // for a failure: why
};

struct BackoffPolicy {
  int after = 2;  // consecutive failures before a backoff; 0: never
  std::chrono::seconds base{30};
  std::chrono::seconds max{3600};
};

// Records the verdicts in the caller's transaction, one statement: a success
// deletes the destination's row, a failure counts one more and, from the
// policy's `after`-th on, backs it off for base * 2^(failures - after),
// capped at max. Returns how long each destination now backed off stays so.
// Throws pqxx errors.
std::map<Destination, std::chrono::seconds> record_destination_verdicts(pqxx::transaction_base& tx,
                                                                        const std::vector<DestinationVerdict>& verdicts,
                                                                        const BackoffPolicy& policy);

}  // namespace wsmtp::common::pg
