#include "pg/delivery_rows.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "pg/body.h"
#include "pg/prepared.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {
namespace {

// Bodies read with a claim: at most this much per batch in all (a batch of 100
// takes messages up to 64 KiB each, one of 1,000 up to 8 KiB each); bigger
// messages are streamed chunk by chunk when their copy is written.
constexpr std::size_t kClaimBodyBudget = 8 * 1024 * 1024;
constexpr std::size_t kMaxBodyWithClaim = 64 * 1024;

}  // namespace

std::string open_destination_filter(const std::string& alias, int names_param, int limits_param) {
  return fmt::format(
      "(destination_slot_key({0}.transport, {0}.destination) "
      "   <> ALL(ARRAY(SELECT unnest(saturated_destinations(${1}::text[], ${2}::int[])))) "
      " AND NOT EXISTS (SELECT 1 FROM destination_backoff b WHERE b.transport = {0}.transport "
      "                 AND b.destination = {0}.destination AND b.backoff_until > now()))",
      alias, names_param, limits_param);
}

void load_claimed_work(pqxx::transaction_base& tx, std::vector<DeliveryClaim>& claims,
                       const std::vector<std::string>& transports, const DestinationLimits& limits) {
  if (claims.empty()) return;
  std::map<std::int64_t, DeliveryClaim*> by_id;
  std::vector<std::int64_t> ids;
  for (auto& c : claims) {
    by_id[c.lease.msg_id] = &c;
    ids.push_back(c.lease.msg_id);
  }
  static const std::string kTasks = fmt::format(
      "SELECT message_id, id, recipient, original_rcpt, transport, destination, attempts, "
      "  COALESCE(prepend_headers, ''), envelope_from_override FROM deliveries d "
      "WHERE message_id = ANY($1::bigint[]) AND status = 'pending' AND transport = ANY($2::text[]) "
      "  AND next_attempt_at <= now() AND {} ORDER BY message_id, id",
      open_destination_filter("d", 3, 4));
  auto tasks = exec_prepared_sql(tx, "wsmtp_claimed_tasks", kTasks.c_str(), bigint_array(ids), text_array(transports),
                                 text_array(limits.transports), bigint_array(limits.limits));
  for (const auto& row : tasks) {
    auto* claim = by_id[row[0].as<std::int64_t>()];
    claim->tasks.push_back({row[1].as<std::int64_t>(), row[2].as<std::string>(), row[3].as<std::string>(),
                            row[4].as<std::string>(), row[5].as<std::string>(), row[6].as<int>(),
                            row[7].as<std::string>(),
                            row[8].is_null() ? claim->envelope_from : row[8].as<std::string>()});
  }
  // Only messages with copies to write need their bodies (the others are
  // claimed just to be finished).
  std::vector<std::int64_t> writing;
  for (const auto& c : claims)
    if (!c.tasks.empty()) writing.push_back(c.lease.msg_id);
  if (writing.empty()) return;
  const auto max_each = std::min(kMaxBodyWithClaim, kClaimBodyBudget / writing.size());
  for (auto& [id, body] : read_small_bodies(tx, writing, max_each)) by_id[id]->body = std::move(body);
}

}  // namespace wsmtp::common::pg
