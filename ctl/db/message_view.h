// Read-only detail of messages for operators: wsmtpctl list, show and the
// qshape-style backlog view. Timestamps come back as UTC ISO-8601 text.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "msg_state.h"

namespace wsmtp::common::pg {

struct MessageDetail {
  std::int64_t id = 0;
  MsgState state = MsgState::receiving;
  std::string envelope_from, client_addr, client_helo, received_by;
  std::int64_t size = 0;
  std::string created_at, received_at, routing_at, routed_at, delivering_at, done_at, state_changed_at;
  std::string next_attempt_at, lease_owner, lease_expires;
  int expired_claims = 0;
  bool held = false;
  std::string held_reason, last_error;
  int recipients = 0, pending = 0, delivered = 0, bounced = 0;
};

struct DeliveryDetail {
  std::int64_t id = 0;
  std::string recipient, original_rcpt, transport, destination, status;
  int attempts = 0;
  std::string next_attempt_at, last_error, final_at;
};

std::vector<MessageDetail> load_messages(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids);
std::vector<std::string> load_envelope_recipients(pqxx::transaction_base& tx, std::int64_t msg_id);
std::vector<DeliveryDetail> load_deliveries(pqxx::transaction_base& tx, std::int64_t msg_id);
// The header section of the stored message (up to the first empty line), read
// chunk by chunk and cut at max_bytes.
std::string load_headers(pqxx::transaction_base& tx, std::int64_t msg_id, std::size_t max_bytes = 64 * 1024);
// The first max_bytes of the body after the header section ("" when the
// message is all header): what `wsmtpctl show --body` prints.
std::string load_body_start(pqxx::transaction_base& tx, std::int64_t msg_id, std::size_t max_bytes);

struct Backlog {
  std::int64_t deferred_messages = 0;                             // state 3 with a pending delivery that failed before
  std::vector<std::pair<std::string, std::int64_t>> top_senders;  // unfinished messages
  std::vector<std::pair<std::string, std::int64_t>> top_destinations;  // pending deliveries by domain
};
Backlog backlog(pqxx::transaction_base& tx, int top);

}  // namespace wsmtp::common::pg
