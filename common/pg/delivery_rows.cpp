#include "pg/delivery_rows.h"

#include <algorithm>
#include <map>

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

void load_claimed_work(pqxx::transaction_base& tx, std::vector<DeliveryClaim>& claims,
                       const std::vector<std::string>& transports) {
  if (claims.empty()) return;
  std::map<std::int64_t, DeliveryClaim*> by_id;
  std::vector<std::int64_t> ids;
  for (auto& c : claims) {
    by_id[c.lease.msg_id] = &c;
    ids.push_back(c.lease.msg_id);
  }
  auto tasks =
      exec_prepared_sql(tx, "wsmtp_claimed_tasks",
                        "SELECT message_id, id, recipient, original_rcpt, transport, destination, attempts, "
                        "  COALESCE(prepend_headers, ''), envelope_from_override FROM deliveries "
                        "WHERE message_id = ANY($1::bigint[]) AND status = 'pending' AND transport = ANY($2::text[]) "
                        "  AND next_attempt_at <= now() ORDER BY message_id, id",
                        bigint_array(ids), text_array(transports));
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
