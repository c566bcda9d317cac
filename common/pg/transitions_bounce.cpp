// SQL of the operator's bounce. Why it walks the machine's own steps instead of
// jumping to DONE: the schema admits only the moves of msg_transitions (001,
// 015), and an operator's bounce is exactly a routing that fails every
// recipient plus a delivery finish that reports them; in one transaction no
// other session ever sees the intermediate states, and the schema keeps
// refusing every shortcut for everyone else.
#include "pg/transitions_bounce.h"

#include <map>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "log.h"
#include "pg/dsn_messages.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {
namespace {

struct Locked {
  MsgState state = MsgState::receiving;
  bool held = false;
  std::string envelope_from, lease_owner, lease_expires;
  bool lease_live = false;
};

// One compare-and-set per step from `from` to DONE; the first clears the lease
// (a router's or a dead deliverer's, whose finish then fails its token check).
void walk_to_done(pqxx::transaction_base& tx, std::int64_t msg_id, MsgState from, const std::string& reason) {
  for (int s = static_cast<int>(from); s < static_cast<int>(MsgState::done); ++s) {
    auto r = tx.exec_params(
        "UPDATE messages SET state = $3, lease_owner = NULL, lease_token = NULL, lease_expires = NULL, "
        "  held = false, held_reason = NULL, last_error = $4 WHERE id = $1 AND state = $2",
        msg_id, s, s + 1, "bounced by the operator: " + reason);
    // The row is locked by this transaction: nobody else can have moved it.
    if (r.affected_rows() != 1)
      throw std::logic_error(fmt::format("msg={} changed state under our lock (step {})", msg_id, s));
  }
}

// Fails the pending deliveries of a routed message; returns how many.
int fail_pending(pqxx::transaction_base& tx, std::int64_t msg_id, const std::string& reason) {
  auto rows = tx.exec_params(
      "UPDATE deliveries SET status = 'bounced', final_at = now(), "
      "  last_error = $2 || COALESCE(' (last attempt: ' || last_error || ')', '') "
      "WHERE message_id = $1 AND status = 'pending' RETURNING recipient",
      msg_id, reason);
  for (const auto& r : rows) log::info("msg={} rcpt={} bounced by the operator: {}", msg_id, r[0].c_str(), reason);
  return static_cast<int>(rows.size());
}

// Fails every envelope recipient of a message not routed yet, recorded as the
// router records a recipient it refuses (transport 'bounce', final at once).
int fail_unrouted(pqxx::transaction_base& tx, std::int64_t msg_id, const std::string& reason) {
  auto rows = tx.exec_params(
      "INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination, status, final_at, "
      "  last_error) "
      "SELECT $1, address, address, 'bounce', '', 'bounced', now(), $2 FROM recipients WHERE message_id = $1 "
      "ORDER BY seq ON CONFLICT DO NOTHING RETURNING recipient",
      msg_id, reason);
  for (const auto& r : rows) log::info("msg={} rcpt={} bounced by the operator: {}", msg_id, r[0].c_str(), reason);
  return static_cast<int>(rows.size());
}

std::map<std::int64_t, Locked> lock_messages(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids) {
  // A worker holds a message's row only for its short claim and finish
  // statements; waiting longer than this means something is wrong, and the
  // operator hears about it instead of a hang.
  tx.exec("SET LOCAL lock_timeout = '30s'");
  auto rows = tx.exec_params(
      "SELECT id, state, held, envelope_from, COALESCE(lease_owner, ''), "
      "  COALESCE(to_char(lease_expires AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "
      "  COALESCE(lease_expires > now(), false) "
      "FROM messages WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
      bigint_array(ids));
  std::map<std::int64_t, Locked> out;
  for (const auto& r : rows)
    out[r[0].as<std::int64_t>()] = {static_cast<MsgState>(r[1].as<int>()),
                                    r[2].as<bool>(),
                                    r[3].as<std::string>(),
                                    r[4].as<std::string>(),
                                    r[5].as<std::string>(),
                                    r[6].as<bool>()};
  return out;
}

struct Counts {
  int pending = 0;
  int unreported = 0;  // bounced, no DSN yet
};

Counts delivery_counts(pqxx::transaction_base& tx, std::int64_t msg_id) {
  auto r = tx.exec_params1(
      "SELECT count(*) FILTER (WHERE status = 'pending'), "
      "       count(*) FILTER (WHERE status = 'bounced' AND dsn_message_id IS NULL) "
      "FROM deliveries WHERE message_id = $1",
      msg_id);
  return {r[0].as<int>(), r[1].as<int>()};
}

BounceResult bounce_one(pqxx::transaction_base& tx, std::int64_t msg_id, const Locked& m,
                        const BounceOptions& options) {
  BounceResult out;
  out.msg_id = msg_id;
  out.from = m.state;
  out.held = m.held;
  out.lease_owner = m.lease_owner;
  out.lease_expires = m.lease_expires;
  switch (m.state) {
    case MsgState::receiving:
      out.verdict = BounceVerdict::receiving;
      return out;
    case MsgState::done:
      out.verdict = BounceVerdict::already_done;
      return out;
    case MsgState::delivering:
      if (m.lease_live && !options.force) {
        out.verdict = BounceVerdict::live_lease;
        return out;
      }
      [[fallthrough]];
    case MsgState::routed: {
      auto before = delivery_counts(tx, msg_id);
      if (before.pending == 0 && before.unreported == 0) {
        out.verdict = BounceVerdict::nothing_pending;
        return out;
      }
      out.bounced = fail_pending(tx, msg_id, options.reason);
      break;
    }
    case MsgState::received:
    case MsgState::routing:
      out.bounced = fail_unrouted(tx, msg_id, options.reason);
      break;
  }
  out.verdict = BounceVerdict::bounced;
  out.reported = delivery_counts(tx, msg_id).unreported;
  walk_to_done(tx, msg_id, m.state, options.reason);
  log::info("msg={} state {}->DONE (operator bounce: {} failed now{}{})", msg_id, state_name(m.state), out.bounced,
            m.lease_owner.empty() ? "" : ", lease of " + m.lease_owner + " taken over", m.held ? ", was held" : "");
  out.null_sender = m.envelope_from.empty();
  // queue_failure_dsn sends nothing to <> and leaves those rows unreported.
  out.dsn_id = queue_failure_dsn(tx, msg_id, options.reporting_mta);
  return out;
}

}  // namespace

std::vector<BounceResult> bounce_messages(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids,
                                          const BounceOptions& options) {
  std::vector<BounceResult> results;
  if (ids.empty()) return results;
  auto locked = lock_messages(tx, ids);
  std::set<std::int64_t> seen;
  for (auto id : ids) {
    if (!seen.insert(id).second) continue;
    auto it = locked.find(id);
    if (it == locked.end()) {
      BounceResult missing;
      missing.msg_id = id;
      results.push_back(missing);
      continue;
    }
    results.push_back(bounce_one(tx, id, it->second, options));
  }
  return results;
}

}  // namespace wsmtp::common::pg
