// A message as the listener hands it to the queue, and the verdict on one of
// its recipients: the listener's Store (listener/store.h) and the state
// machine that inserts it (pg/transitions.h) both speak these values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wsmtp::common {

// full_local: a local mailbox the deliverer recently found over its quota
// (schema 019): refused for now, 452 4.2.2, rather than queued to wait.
enum class RecipientVerdict { known_local, unknown_local, remote, full_local };

struct NewMessage {
  std::string envelope_from;  // "" for the null sender
  std::string client_addr;    // textual IP, may be empty
  std::string client_helo;
  std::string received_by;
  std::vector<std::string> recipients;
  // What the listener decided for this message (listener/backlog.h): the keys
  // its undelivered backlog counts under (schema 020), and the client whose
  // fair-order clock it advances ("" for none: authenticated, trusted and
  // limit-exempt sessions are ordered by sender only).
  std::vector<std::string> backlog_keys{};
  std::string fair_client{};
};

// A message received whole before anything was written (it fit in one chunk).
struct CompleteMessage {
  NewMessage envelope;
  std::string body;
  std::int64_t msg_id = 0;  // from reserve_message_ids: its queue id was given out before it is stored
};

}  // namespace wsmtp::common
