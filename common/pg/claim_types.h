// What a claim hands its worker: the lease and, for the deliverer, the claimed
// work. Types only, so that the modules that fill a claim (delivery_rows) need
// not include the state machine that calls them (transitions.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wsmtp::common::pg {

struct Lease {
  std::int64_t msg_id = 0;
  std::string token;  // uuid; finishing a claim compares it in the same statement
};

struct DeliveryTask {
  std::int64_t delivery_id = 0;
  std::string recipient;
  std::string original_rcpt;
  std::string transport;
  std::string destination;
  int attempts = 0;
  std::string prepend_headers;  // list mail: CRLF-terminated header lines to put first
  std::string envelope_from;    // the sender to use: the list's bounce address or the message's
};

struct DeliveryClaim {
  Lease lease;
  std::string envelope_from;
  std::int64_t received_epoch = 0;  // seconds; stable across retries (Maildir names)
  std::int64_t size = 0;            // octets of the stored message (SIZE= to relays)
  std::vector<DeliveryTask> tasks;  // pending, due, for the transports asked for
  std::optional<std::string> body;  // the stored message when small (read with the claim); else stream it
  // The message's first delivery claim ever: no earlier attempt can have left
  // a copy anywhere (a copy is only written under a committed claim, and every
  // claim stamps delivering_at), so local agents need not look for one.
  bool first_claim = false;
};

// Per transport name, how many workers may deliver to one of its destinations
// at once (deliver/db/destination_slots.h holds the slots): a claim skips the
// deliveries of a destination with that many slots held. Empty: none skipped
// for that reason (backed-off destinations are skipped all the same).
struct DestinationLimits {
  std::vector<std::string> transports;
  std::vector<std::int64_t> limits;  // by transports
};

}  // namespace wsmtp::common::pg
