// SQL for every state change. Rules kept here (DESIGN.md, STYLE §9):
//  * each transition names the state it expects (compare-and-set), and leased
//    states also the lease token, so a worker that stalled past its lease can
//    never commit over the worker that took the message after it;
//  * claims lock candidate rows with FOR UPDATE SKIP LOCKED, so concurrent
//    claimers partition the queue instead of blocking on each other;
//  * the schema refuses any other move and NOTIFYs the next stage (schema 015);
//  * the moves every message makes (claims and finishes) set state_changed_at
//    and their stage's timestamp themselves, as the schema's stamp would
//    (which then does not run: a PL/pgSQL call per row saved); the rare ones
//    (holds, resets, releases) leave it to the schema.
#include "pg/transitions.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

#include <fmt/format.h>

#include "log.h"
#include "printable.h"
#include "queue_id.h"
#include "pg/body.h"
#include "pg/dsn_messages.h"
#include "pg/delivery_rows.h"
#include "pg/prepared.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {
namespace {

std::string interval(std::chrono::seconds s) { return fmt::format("{} seconds", s.count()); }

// Holds messages in `state` whose lease expired and that reached the expiry
// limit, moving them back one state so a release makes them claimable again.
//
// Every statement that counts an expired lease counts only a lease with an
// owner (lease_owner <> ''): only a lease a worker held and let run out is an
// expiry (DESIGN.md: a live worker renews its leases, so that worker stopped).
// A lease with an empty owner is no worker's: the router handed the message
// back after a routing failure (record_routing_failure, counted in
// routing_failures), and the lease is only the backoff before the retry.
int hold_exhausted(pqxx::transaction_base& tx, MsgState state, int max_expired_claims, int limit) {
  auto back = reset_target(state);
  auto rows = exec_prepared_sql(
      tx, "wsmtp_hold_exhausted",
      "UPDATE messages m SET state = $2, held = true, expired_claims = m.expired_claims + 1, "
      "  held_reason = format('lease expired %s times (last holder %s)', m.expired_claims + 1, m.lease_owner), "
      "  lease_owner = NULL, lease_token = NULL, lease_expires = NULL "
      "WHERE m.id = ANY(ARRAY(SELECT id FROM messages WHERE state = $1 AND NOT held AND lease_expires < now() "
      "               AND lease_owner <> '' AND expired_claims + 1 >= $3 "
      "               ORDER BY lease_expires LIMIT $4 FOR UPDATE SKIP LOCKED)) "
      "RETURNING m.id, m.held_reason",
      static_cast<int>(state), static_cast<int>(*back), max_expired_claims, limit);
  for (const auto& row : rows)
    log::warn("msg={} held in state {}: {}", qid(row[0].as<std::int64_t>()), state_name(*back),
              row[1].as<std::string>());
  return static_cast<int>(rows.size());
}

}  // namespace

// --- listener ---------------------------------------------------------------

std::int64_t create_message(pqxx::transaction_base& tx, const NewMessage& m) {
  auto id = reserve_message_ids(tx, 1).front();
  create_message(tx, id, m);
  return id;
}

// The id was reserved from the identity's sequence (reserve_message_ids), so
// it cannot collide with one the sequence hands out later. Message and
// recipients in one statement, one round trip per streamed message, through
// begin_receipt (018): the listener may not insert recipients itself, so it
// cannot add any to a message that already exists.
void create_message(pqxx::transaction_base& tx, std::int64_t msg_id, const NewMessage& m) {
  exec_prepared_sql(tx, "wsmtp_begin_receipt", "SELECT begin_receipt($1, $2, $3, $4, $5, $6::text[], $7::text[])",
                    msg_id, m.envelope_from, m.client_addr, m.client_helo, m.received_by, text_array(m.recipients),
                    text_array(m.backlog_keys));
}

// The client comes from the listener, not the row: client_addr records where
// the message came from, fair_client whose clock it advances (schema 020).
std::optional<std::int64_t> stamp_receiving(pqxx::transaction_base& tx, std::int64_t msg_id,
                                            const std::string& fair_client) {
  auto rows = tx.exec_params(
      "SELECT (route_fair_stamp(ARRAY[envelope_from], ARRAY[$2::text]))[1] "
      "FROM messages, (SELECT set_config('synchronous_commit', 'off', true)) AS c WHERE id = $1 AND state = 0",
      msg_id, fair_client);
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<std::int64_t>();
}

bool commit_received(pqxx::transaction_base& tx, std::int64_t msg_id, std::int64_t size,
                     std::optional<std::int64_t> route_vtime) {
  auto r = tx.exec_params(
      "UPDATE messages SET state = 1, size = $2, route_vtime = COALESCE($3, route_vtime), "
      "  state_changed_at = now(), received_at = COALESCE(received_at, now()) WHERE id = $1 AND state = 0",
      msg_id, size, route_vtime ? std::to_string(*route_vtime).c_str() : nullptr);
  if (r.affected_rows() == 1) log::info("msg={} state RECEIVING->RECEIVED size={}", qid(msg_id), size);
  return r.affected_rows() == 1;
}

namespace {

// ARRAY[$first::bytea, ...] for n binary parameters: libpqxx 6.4 sends a
// binarystring as a binary parameter, but has no binary array type, and a text
// array of escaped bytea would double every body on the wire.
std::string bytea_params(std::size_t first, std::size_t n) {
  std::string out = "ARRAY[";
  for (std::size_t i = 0; i < n; ++i) out += fmt::format("{}${}::bytea", i ? ", " : "", first + i);
  return out + "]::bytea[]";
}

}  // namespace

std::vector<std::int64_t> reserve_message_ids(pqxx::transaction_base& tx, int count) {
  if (count < 1 || count > 1000) throw std::invalid_argument(fmt::format("cannot reserve {} message ids", count));
  std::vector<std::int64_t> ids;
  for (const auto& row : exec_prepared_sql(tx, "wsmtp_reserve_ids", "SELECT reserve_message_ids($1)", count))
    ids.push_back(row[0].as<std::int64_t>());
  if (ids.size() != static_cast<std::size_t>(count))
    throw std::runtime_error("reserve_message_ids returned too few ids");
  return ids;
}

void store_received_batch(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids,
                          const std::vector<CompleteMessage>& batch) {
  if (ids.size() != batch.size())
    throw std::invalid_argument(fmt::format("{} ids for a batch of {} messages", ids.size(), batch.size()));
  std::vector<std::string> senders, clients, fair_clients, helos, by, rcpt_addr, key_text;
  std::vector<std::int64_t> sizes, rcpt_ord, rcpt_seq, key_ord;
  std::vector<pqxx::binarystring> bodies;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& m = batch[i];
    senders.push_back(m.envelope.envelope_from);
    clients.push_back(m.envelope.client_addr);
    fair_clients.push_back(m.envelope.fair_client);
    helos.push_back(m.envelope.client_helo);
    by.push_back(m.envelope.received_by);
    sizes.push_back(static_cast<std::int64_t>(m.body.size()));
    bodies.emplace_back(m.body.data(), m.body.size());
    for (std::size_t r = 0; r < m.envelope.recipients.size(); ++r) {
      rcpt_ord.push_back(static_cast<std::int64_t>(i + 1));
      rcpt_seq.push_back(static_cast<std::int64_t>(r));
      rcpt_addr.push_back(m.envelope.recipients[r]);
    }
    for (const auto& key : m.envelope.backlog_keys) {
      key_ord.push_back(static_cast<std::int64_t>(i + 1));
      key_text.push_back(key);
    }
  }
  // One prepared statement per batch size (the body parameters are spelled
  // out), parsed and planned once per store connection; the listener's batches
  // hold at most 64 messages, so a connection keeps at most 64 of them.
  const auto sql =
      "SELECT receive_messages($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
      "$7::bigint[], $8::bigint[], $9::int[], $10::text[], $11::bigint[], $12::text[], " +
      bytea_params(13, bodies.size()) + ")";
  auto rows = exec_prepared_sql(tx, fmt::format("wsmtp_receive_{}", bodies.size()).c_str(), sql.c_str(),
                                bigint_array(ids), text_array(senders), text_array(clients), text_array(fair_clients),
                                text_array(helos), text_array(by), bigint_array(sizes), bigint_array(rcpt_ord),
                                bigint_array(rcpt_seq), text_array(rcpt_addr), bigint_array(key_ord),
                                text_array(key_text), pqxx::prepare::make_dynamic_params(bodies));
  if (rows.size() != 1) throw std::runtime_error("receive_messages returned no row");
  const auto created = rows[0][0].as<std::size_t>();
  if (created != batch.size())
    throw std::runtime_error(fmt::format("batch of {} messages: only {} created", batch.size(), created));
  for (std::size_t i = 0; i < ids.size(); ++i)
    log::info("msg={} created in state RECEIVED by {} size={} rcpts={}", qid(ids[i]), by[i], sizes[i],
              batch[i].envelope.recipients.size());
}

bool discard_receiving(pqxx::transaction_base& tx, std::int64_t msg_id) {
  auto r = tx.exec_params("DELETE FROM messages WHERE id = $1 AND state = 0", msg_id);
  return r.affected_rows() == 1;
}

// --- router -----------------------------------------------------------------

namespace {

// The router's claims are prepared statements (parsed and planned once per
// connection) that return each message's recipients with it, so a claim is one
// transaction of two statements whatever the batch size.
//
// Expired leases first: they have waited longest. A lease that expired
// max_expired_claims times is not renewed: the message is held and moved back
// to RECEIVED (so that a release makes it claimable again); the others are
// claimed again, staying in ROUTING.
//
// The candidates are picked by a sub-select turned into an array, so the plan
// is the same small index scan however the statement's parameters look (a
// cached generic plan of a join there could scan the whole queue).
constexpr const char* kReclaimExpiredRouting =
    "WITH c AS (SELECT id, expired_claims + (lease_owner <> '')::int AS n FROM messages "
    "           WHERE state = 2 AND NOT held AND lease_expires < now() "
    "           ORDER BY lease_expires LIMIT $3 FOR UPDATE SKIP LOCKED), "
    "moved AS ("
    "  UPDATE messages m SET expired_claims = c.n, held = c.n >= $4, state = CASE WHEN c.n >= $4 THEN 1 ELSE 2 END, "
    "    held_reason = CASE WHEN c.n >= $4 "
    "      THEN format('lease expired %s times (last holder %s)', c.n, m.lease_owner) ELSE m.held_reason END, "
    "    lease_owner = CASE WHEN c.n >= $4 THEN NULL ELSE $1 END, "
    "    lease_token = CASE WHEN c.n >= $4 THEN NULL ELSE gen_random_uuid() END, "
    "    lease_expires = CASE WHEN c.n >= $4 THEN NULL ELSE now() + $2::interval END "
    "  FROM c WHERE m.id = c.id AND m.id = ANY (ARRAY(SELECT id FROM c)) "
    "  RETURNING m.id, m.held, m.lease_token, m.envelope_from, m.expired_claims, m.held_reason) "
    "SELECT moved.*, ARRAY(SELECT address FROM recipients r WHERE r.message_id = moved.id ORDER BY r.seq) "
    "FROM moved";

// Then fresh arrivals in fair order (route_vtime: start-time fair queueing per
// sender and client, schema 003), which the messages_route_fair index serves.
constexpr const char* kClaimFreshRouting =
    "WITH moved AS ("
    "  UPDATE messages m SET state = 2, lease_owner = $1, lease_token = gen_random_uuid(), "
    "    lease_expires = now() + $2::interval, state_changed_at = now(), routing_at = now() "
    "  WHERE m.id = ANY (ARRAY(SELECT id FROM messages WHERE state = 1 AND NOT held "
    "                         ORDER BY route_vtime, id LIMIT $3 FOR UPDATE SKIP LOCKED)) "
    "  RETURNING m.id, false AS held, m.lease_token, m.envelope_from, m.expired_claims, m.held_reason) "
    "SELECT moved.*, ARRAY(SELECT address FROM recipients r WHERE r.message_id = moved.id ORDER BY r.seq) "
    "FROM moved";

// Rows of the two statements above: claims, or (held) a message given up on.
void add_routing_claims(const pqxx::result& rows, std::vector<RoutingClaim>& claims, bool reclaimed) {
  for (const auto& row : rows) {
    const auto msg_id = row[0].as<std::int64_t>();
    if (row[1].as<bool>()) {
      log::warn("msg={} held in state {}: {}", qid(msg_id), state_name(MsgState::received), row[5].as<std::string>());
      continue;
    }
    RoutingClaim claim{{msg_id, row[2].as<std::string>()}, row[3].as<std::string>(), {}, row[4].as<int>()};
    auto parser = row[6].as_array();
    for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next())
      if (item.first == pqxx::array_parser::string_value) claim.recipients.push_back(item.second);
    if (reclaimed)
      log::warn("msg={} re-claimed for routing after an expired lease (expiry {})", qid(msg_id), claim.expired_claims);
    claims.push_back(std::move(claim));
  }
}

}  // namespace

std::vector<RoutingClaim> claim_for_routing(pqxx::connection& conn, const ClaimOptions& o) {
  conn.prepare("router_reclaim_expired", kReclaimExpiredRouting);
  conn.prepare("router_claim_fresh", kClaimFreshRouting);
  pqxx::work tx(conn);
  std::vector<RoutingClaim> claims;
  if (o.reclaim_expired)
    add_routing_claims(
        tx.exec_prepared("router_reclaim_expired", o.owner, interval(o.lease_time), o.limit, o.max_expired_claims),
        claims, true);
  const int room = o.limit - static_cast<int>(claims.size());
  if (room > 0)
    add_routing_claims(tx.exec_prepared("router_claim_fresh", o.owner, interval(o.lease_time), room), claims, false);
  tx.commit();
  for (const auto& c : claims) log::info("msg={} state RECEIVED->ROUTING owner={}", qid(c.lease.msg_id), o.owner);
  return claims;
}

bool finish_routing(pqxx::transaction_base& tx, const Lease& lease, const std::vector<PlannedDelivery>& plan,
                    const std::vector<ListFanout>& fanouts) {
  return !finish_routing(tx, {RoutingPlan{lease, plan, fanouts}}).empty();
}

std::vector<RoutedMessage> finish_routing(pqxx::transaction_base& tx, const std::vector<RoutingPlan>& plans,
                                          const std::vector<BulkMember>* members) {
  std::vector<std::int64_t> ids, row_ids;
  std::vector<std::string> tokens, rcpt, orig, transport, dest, bounce, is_bounce, prepend, env_from, has_env_from;
  // A row planned twice is written once. Done here rather than with ON CONFLICT
  // in the statement: a plain insert costs a fifth less per row, and no row
  // can exist yet for a message that is still in ROUTING.
  std::set<std::tuple<std::int64_t, std::string_view, std::string_view, std::string_view>> unique_rows;
  for (const auto& plan : plans) {
    ids.push_back(plan.lease.msg_id);
    tokens.push_back(plan.lease.token);
    for (const auto& p : plan.deliveries) {
      if (!unique_rows.emplace(plan.lease.msg_id, p.recipient, p.transport, p.destination).second) continue;
      row_ids.push_back(plan.lease.msg_id);
      rcpt.push_back(p.recipient);
      orig.push_back(p.original_rcpt);
      transport.push_back(p.transport);
      dest.push_back(p.destination);
      bounce.push_back(p.bounce_reason.value_or(""));
      is_bounce.push_back(p.bounce_reason ? "t" : "f");
      prepend.push_back(p.prepend_headers);
      env_from.push_back(p.envelope_from_override.value_or(""));
      has_env_from.push_back(p.envelope_from_override ? "t" : "f");
    }
  }
  // One statement, one round trip for the batch: the compare-and-set on state
  // and lease token of every message, and the planned rows inserted only for
  // the messages that moved. Nobody sees either before the caller commits.
  static const char* const kFinish =
      "WITH moved AS ("
      "  UPDATE messages m SET state = 3, lease_owner = NULL, lease_token = NULL, lease_expires = NULL, "
      "    expired_claims = 0, next_attempt_at = now(), state_changed_at = now(), "
      "    routed_at = COALESCE(m.routed_at, now()) "
      "  FROM unnest($1::bigint[], $2::uuid[]) AS l(id, token) "
      "  WHERE m.id = l.id AND m.state = 2 AND m.lease_token = l.token RETURNING m.id), "
      "planned AS ("
      "  INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination, status, last_error, "
      "                          final_at, prepend_headers, envelope_from_override) "
      "  SELECT p.m, p.r, p.o, p.t, p.d, CASE WHEN p.b THEN 'bounced' ELSE 'pending' END, NULLIF(p.e, ''), "
      "         CASE WHEN p.b THEN now() END, p.h, CASE WHEN p.hf THEN p.f END "
      "  FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[], "
      "              $10::text[], $11::text[], $12::bool[]) AS p(m, r, o, t, d, e, b, h, f, hf) "
      "  JOIN moved ON moved.id = p.m RETURNING message_id) "
      "SELECT moved.id, COALESCE(c.n, 0) FROM moved "
      "LEFT JOIN (SELECT message_id, count(*) AS n FROM planned GROUP BY message_id) c ON c.message_id = moved.id";
  tx.conn().prepare("router_finish", kFinish);
  auto rows =
      tx.exec_prepared("router_finish", bigint_array(ids), text_array(tokens), bigint_array(row_ids), text_array(rcpt),
                       text_array(orig), text_array(transport), text_array(dest), text_array(bounce),
                       text_array(is_bounce), text_array(prepend), text_array(env_from), text_array(has_env_from));
  std::map<std::int64_t, int> written;
  for (const auto& row : rows) written[row[0].as<std::int64_t>()] = row[1].as<int>();
  // List fan-outs after the plans: a member a plan already has keeps its planned row.
  std::vector<MessageFanout> fanouts;
  for (const auto& plan : plans)
    if (written.count(plan.lease.msg_id))
      for (const auto& f : plan.fanouts) fanouts.push_back({plan.lease.msg_id, f});
  for (const auto& [msg_id, n] : insert_list_fanouts(tx, fanouts, members)) written[msg_id] += n;
  std::vector<RoutedMessage> routed;
  for (const auto& plan : plans) {
    auto it = written.find(plan.lease.msg_id);
    if (it == written.end()) continue;
    routed.push_back({it->first, it->second});
    log::info("msg={} state ROUTING->ROUTED deliveries={}", qid(it->first), it->second);
  }
  return routed;
}

// --- deliverer --------------------------------------------------------------

std::vector<DeliveryClaim> claim_for_delivery(pqxx::connection& conn, const ClaimOptions& o,
                                              const std::vector<std::string>& transports,
                                              const DestinationLimits& limits) {
  pqxx::work tx(conn);
  if (o.reclaim_expired) hold_exhausted(tx, MsgState::delivering, o.max_expired_claims, o.limit);
  const std::string want = text_array(transports);
  // A message is ours to claim if one of its due deliveries uses our transports,
  // or if nothing is pending at all (any deliverer may finish it). OFFSET 0
  // keeps each EXISTS a lookup per candidate, and = ANY(ARRAY(...)) makes the
  // update find the chosen rows by id: planned otherwise, every claim read the
  // whole queue and hashed every pending delivery (11 ms per claim of 100 at a
  // depth of 5,000, growing with the queue).
  // Only deliveries whose destination is open count (kDestinationOpen): a
  // message whose due work is all for saturated or backed-off destinations
  // stays in the queue rather than coming back in every claim.
  static const std::string kDestinationOpen = open_destination_filter("d", 5, 6);
  static const std::string kWorkFor = fmt::format(
      "(EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id AND d.status = 'pending' "
      "         AND d.transport = ANY($4::text[]) AND d.next_attempt_at <= now() AND {} OFFSET 0) "
      " OR NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id AND d.status = 'pending' "
      "                OFFSET 0))",
      kDestinationOpen);
  // Prepared (per connection): planning these cost more than running them,
  // ~2 ms per claim in a 10,000-message burst.
  static const std::string kReclaimExpired = fmt::format(
      "UPDATE messages m SET lease_owner = $1, lease_token = gen_random_uuid(), "
      "  lease_expires = now() + $2::interval, expired_claims = m.expired_claims + (m.lease_owner <> '')::int "
      "WHERE m.id = ANY(ARRAY(SELECT id FROM messages WHERE state = 4 AND NOT held AND lease_expires < now() "
      "               AND {} ORDER BY lease_expires LIMIT $3 FOR UPDATE SKIP LOCKED)) "
      "RETURNING m.id, m.lease_token, m.envelope_from, "
      "  extract(epoch FROM m.received_at)::bigint, m.expired_claims, m.size",
      kWorkFor);
  std::vector<DeliveryClaim> claims;
  auto add = [&claims](const pqxx::row& row) {
    DeliveryClaim c;
    c.lease = {row[0].as<std::int64_t>(), row[1].as<std::string>()};
    c.envelope_from = row[2].as<std::string>();
    c.received_epoch = row[3].as<std::int64_t>();
    c.size = row[5].as<std::int64_t>();
    claims.push_back(std::move(c));
  };
  const std::string limit_names = text_array(limits.transports);
  const std::string limit_counts = bigint_array(limits.limits);
  auto expired = o.reclaim_expired ? exec_prepared_sql(tx, "wsmtp_deliver_reclaim", kReclaimExpired.c_str(), o.owner,
                                                       interval(o.lease_time), o.limit, want, limit_names, limit_counts)
                                   : pqxx::result{};
  for (const auto& row : expired) {
    add(row);
    log::warn("msg={} re-claimed for delivery after an expired lease (expiry {})", qid(claims.back().lease.msg_id),
              row[4].as<int>());
  }
  int room = o.limit - static_cast<int>(claims.size());
  if (room > 0) {
    // Two lanes (022). Deferred mail due again (claimed before: delivering_at
    // set) gets at most retry_limit of the room, by next_attempt_at; fresh mail
    // fills the rest in fair order (route_vtime, the stamp the message got on
    // arrival), so neither a sender's flood nor a backlog of mail that keeps
    // failing holds back anyone else's. Without fresh mail the retry lane still
    // takes only its share per claim: the worker claims again at once, and
    // fresh mail arriving meanwhile never waits behind more than that share.
    // The candidates' delivering_at is read as locked (FOR UPDATE returns the
    // latest committed version), before this claim overwrites it: NULL means
    // no delivery claim ever committed for the message.
    static const std::string kClaimFresh = fmt::format(
        "WITH r AS (SELECT id FROM messages "
        "           WHERE state = 3 AND NOT held AND delivering_at IS NOT NULL AND next_attempt_at <= now() AND {0} "
        "           ORDER BY next_attempt_at, id LIMIT least($3::int, $7::int) FOR UPDATE SKIP LOCKED), "
        "     f AS (SELECT id FROM messages "
        "           WHERE state = 3 AND NOT held AND delivering_at IS NULL AND next_attempt_at <= now() AND {0} "
        "           ORDER BY route_vtime, id LIMIT $3::int - (SELECT count(*) FROM r) FOR UPDATE SKIP LOCKED), "
        "     c AS (SELECT id, false AS first FROM r UNION ALL SELECT id, true FROM f) "
        "UPDATE messages m SET state = 4, lease_owner = $1, lease_token = gen_random_uuid(), "
        "  lease_expires = now() + $2::interval, state_changed_at = now(), delivering_at = now() "
        "FROM c WHERE m.id = c.id AND m.id = ANY(ARRAY(SELECT id FROM c)) "
        "RETURNING m.id, m.lease_token, m.envelope_from, "
        "  extract(epoch FROM m.received_at)::bigint, m.expired_claims, m.size, c.first",
        kWorkFor);
    const int retry_room = std::min(room, o.retry_limit.value_or(room));
    auto fresh = exec_prepared_sql(tx, "wsmtp_deliver_claim", kClaimFresh.c_str(), o.owner, interval(o.lease_time),
                                   room, want, limit_names, limit_counts, retry_room);
    for (const auto& row : fresh) {
      add(row);
      claims.back().first_claim = row[6].as<bool>();
    }
  }
  load_claimed_work(tx, claims, transports, limits);
  tx.commit();
  for (const auto& c : claims)
    log::info("msg={} state ROUTED->DELIVERING owner={} tasks={}", qid(c.lease.msg_id), o.owner, c.tasks.size());
  return claims;
}

namespace {

const char* status_word(DeliveryStatus s) {
  return s == DeliveryStatus::delivered ? "delivered" : s == DeliveryStatus::bounced ? "bounced" : "pending";
}

// Writes all results in one statement (a relay batch of 1,000 recipients is one
// round trip). A deferral of an expired message becomes a bounce right here, in
// the same statement that records it, so no later pass has to find it.
void record_results(pqxx::transaction_base& tx, const Lease& lease, const std::vector<DeliveryResult>& results,
                    bool expired, std::chrono::seconds lifetime) {
  std::vector<std::int64_t> ids;
  std::vector<std::string> statuses, details, delays;
  for (const auto& r : results) {
    auto status = r.status;
    std::string detail = r.detail;
    if (status == DeliveryStatus::deferred && expired) {
      status = DeliveryStatus::bounced;
      detail = fmt::format("4.4.7 delivery time expired after {}h; last error: {}", lifetime.count() / 3600, detail);
      log::info("msg={} delivery {} expired in the queue: {}", qid(lease.msg_id), r.delivery_id, printable(r.detail));
    }
    ids.push_back(r.delivery_id);
    statuses.push_back(status_word(status));
    details.push_back(detail);
    delays.push_back(std::to_string(r.retry_after.count()));
  }
  exec_prepared_sql(tx, "wsmtp_record_results",
                    "UPDATE deliveries d SET status = r.s, attempts = d.attempts + 1, last_error = NULLIF(r.e, ''), "
                    "  final_at = CASE WHEN r.s = 'pending' THEN NULL ELSE now() END, "
                    "  next_attempt_at = CASE WHEN r.s = 'pending' THEN now() + make_interval(secs => r.w) "
                    "                         ELSE d.next_attempt_at END "
                    "FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[]) AS r(id, s, e, w) "
                    "WHERE d.id = r.id AND d.message_id = $1 AND d.status = 'pending'",
                    lease.msg_id, bigint_array(ids), text_array(statuses), text_array(details), text_array(delays));
}

}  // namespace

FinishOutcome finish_delivery(pqxx::transaction_base& tx, const Lease& lease,
                              const std::vector<DeliveryResult>& results, const FinishOptions& options,
                              bool first_claim) {
  // Lock our row, verify the lease, and learn whether the message outlived the queue lifetime.
  auto owned = exec_prepared_sql(tx, "wsmtp_finish_lock",
                                 "SELECT received_at < now() - make_interval(secs => $3) FROM messages "
                                 "WHERE id = $1 AND state = 4 AND lease_token = $2::uuid FOR UPDATE",
                                 lease.msg_id, lease.token, static_cast<double>(options.max_queue_lifetime.count()));
  if (owned.empty()) return FinishOutcome::lost_lease;
  if (!results.empty()) record_results(tx, lease, results, owned[0][0].as<bool>(false), options.max_queue_lifetime);
  auto pending = exec_prepared_sql(tx, "wsmtp_finish_count",
                                   "SELECT count(*) FILTER (WHERE status = 'pending'), "
                                   "       count(*) FILTER (WHERE status = 'bounced' AND dsn_message_id IS NULL) "
                                   "FROM deliveries WHERE message_id = $1",
                                   lease.msg_id)[0];
  // A message held while we worked on it (wsmtpctl hold): what was done is
  // recorded like any other result, and it moves on only as far as that
  // takes it. With nothing left pending it is DONE and the hold is moot
  // (cleared: nothing is left to hold back); otherwise it goes back to
  // ROUTED still held, its remaining deliveries pending until a release.
  if (pending[0].as<std::int64_t>() == 0) {
    exec_prepared_sql(tx, "wsmtp_finish_done",
                      "UPDATE messages SET state = 5, lease_owner = NULL, lease_token = NULL, lease_expires = NULL, "
                      "  held = false, state_changed_at = now(), done_at = now() "
                      "WHERE id = $1 AND state = 4 AND lease_token = $2::uuid",
                      lease.msg_id, lease.token);
    log::info("msg={} state DELIVERING->DONE", qid(lease.msg_id));
    if (pending[1].as<std::int64_t>() > 0) queue_failure_dsn(tx, lease.msg_id, options.reporting_mta);
    return FinishOutcome::done;
  }
  // A first claim that attempted nothing (its destinations were busy, or the
  // message was held meanwhile) wrote no copy anywhere: the message goes back
  // to the fresh lane, still never claimed as far as first_claim and the
  // claim order are concerned, instead of queueing behind deferred mail.
  const bool back_to_fresh = first_claim && results.empty();
  auto back =
      exec_prepared_sql(tx, "wsmtp_finish_back",
                        "UPDATE messages SET state = 3, lease_owner = NULL, lease_token = NULL, lease_expires = NULL, "
                        "  state_changed_at = now(), routed_at = COALESCE(routed_at, now()), "
                        "  expired_claims = 0, next_attempt_at = (SELECT min(next_attempt_at) FROM deliveries "
                        "                                         WHERE message_id = $1 AND status = 'pending'), "
                        "  delivering_at = CASE WHEN $3 THEN NULL ELSE delivering_at END "
                        "WHERE id = $1 AND state = 4 AND lease_token = $2::uuid RETURNING held",
                        lease.msg_id, lease.token, back_to_fresh);
  log::info("msg={} state DELIVERING->ROUTED pending={} ({})", qid(lease.msg_id), pending[0].as<std::int64_t>(),
            !back.empty() && back[0][0].as<bool>() ? "held" : "deferred");
  if (options.delay_warning_after.count() > 0)
    queue_delay_warning(tx, lease.msg_id, options.reporting_mta, options.delay_warning_after);
  return FinishOutcome::deferred;
}

std::vector<std::int64_t> finish_delivered_batch(pqxx::transaction_base& tx,
                                                 const std::vector<DeliveredMessage>& messages) {
  std::vector<std::int64_t> ids, delivery_ids, delivery_msgs;
  std::vector<std::string> tokens, details;
  for (const auto& m : messages) {
    ids.push_back(m.lease.msg_id);
    tokens.push_back(m.lease.token);
    for (const auto& r : m.results) {
      delivery_ids.push_back(r.delivery_id);
      delivery_msgs.push_back(m.lease.msg_id);
      details.push_back(r.detail);
    }
  }
  // owned: our leased rows, locked, with nothing pending beyond what we report
  // (found by id: matched by state instead, a deep DELIVERING queue was read
  // whole for every batch).
  auto rows = exec_prepared_sql(
      tx, "wsmtp_finish_delivered_batch",
      "WITH owned AS ("
      "  SELECT m.id FROM messages m JOIN unnest($1::bigint[], $2::uuid[]) AS l(id, token) "
      "    ON m.id = l.id AND m.lease_token = l.token "
      "  WHERE m.id = ANY($1::bigint[]) AND m.state = 4 "
      "    AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id "
      "                    AND d.status = 'pending' AND d.id <> ALL($3::bigint[])) "
      "  FOR UPDATE OF m), "
      "recorded AS ("
      "  UPDATE deliveries d SET status = 'delivered', attempts = d.attempts + 1, last_error = NULLIF(x.e, ''), "
      "    final_at = now() "
      "  FROM unnest($3::bigint[], $4::bigint[], $5::text[]) AS x(id, msg, e) "
      "  WHERE d.id = x.id AND d.message_id = x.msg AND d.status = 'pending' "
      "    AND x.msg IN (SELECT id FROM owned) RETURNING d.message_id), "
      "done AS ("
      "  UPDATE messages m SET state = 5, lease_owner = NULL, lease_token = NULL, lease_expires = NULL, "
      "    held = false, state_changed_at = now(), done_at = now() "
      "  FROM owned WHERE m.id = owned.id RETURNING m.id) "
      "SELECT id FROM done ORDER BY id",
      bigint_array(ids), text_array(tokens), bigint_array(delivery_ids), bigint_array(delivery_msgs),
      text_array(details));
  std::vector<std::int64_t> finished;
  for (const auto& row : rows) {
    finished.push_back(row[0].as<std::int64_t>());
    log::info("msg={} state DELIVERING->DONE", qid(finished.back()));
  }
  return finished;
}

// --- leases of a working worker ----------------------------------------------

std::vector<LeaseCheck> renew_leases(pqxx::connection& conn, MsgState leased, const std::vector<Lease>& leases,
                                     std::chrono::seconds lease_time) {
  if (leased != MsgState::routing && leased != MsgState::delivering)
    log::fatal("renew_leases called for state {}", state_name(leased));
  std::vector<LeaseCheck> out;
  if (leases.empty()) return out;
  std::vector<std::int64_t> ids;
  std::vector<std::string> tokens;
  for (const auto& l : leases) {
    ids.push_back(l.msg_id);
    tokens.push_back(l.token);
  }
  // SKIP LOCKED: the worker's own finish (or an operator) may hold a row
  // locked; waiting for it could deadlock with that transaction, and a lease
  // that is being finished needs no renewal. The final SELECT reads the
  // statement's snapshot, so such a row still shows as ours; the UPDATE in the
  // CTE is not visible to it, which is why "renewed" comes from RETURNING.
  pqxx::work tx(conn);
  auto rows = exec_prepared_sql(
      tx, "wsmtp_renew_leases",
      "WITH l AS (SELECT * FROM unnest($1::bigint[], $2::uuid[]) WITH ORDINALITY AS l(id, token, ord)), "
      "renewed AS ("
      "  UPDATE messages m SET lease_expires = now() + $4::interval FROM l "
      "  WHERE m.id = l.id AND m.state = $3::smallint AND m.lease_token = l.token AND m.lease_owner <> '' "
      "    AND m.id = ANY(ARRAY(SELECT id FROM messages WHERE id = ANY($1::bigint[]) AND state = $3::smallint "
      "                         AND lease_expires < now() + $4::interval * 5 / 6 FOR UPDATE SKIP LOCKED)) "
      "  RETURNING m.id) "
      "SELECT l.id, m.id IS NOT NULL, "
      "       COALESCE(m.state = $3::smallint AND m.lease_token = l.token AND m.lease_owner <> '', false), "
      "       COALESCE(m.held, false), l.id IN (SELECT id FROM renewed) "
      "FROM l LEFT JOIN messages m ON m.id = l.id ORDER BY l.ord",
      bigint_array(ids), text_array(tokens), static_cast<int>(leased), interval(lease_time));
  tx.commit();
  for (const auto& row : rows) {
    LeaseCheck c{row[0].as<std::int64_t>()};
    if (!row[1].as<bool>())
      c.status = LeaseStatus::deleted;
    else if (!row[2].as<bool>())
      c.status = LeaseStatus::lost;
    else if (row[3].as<bool>())
      c.status = LeaseStatus::held;
    c.renewed = row[4].as<bool>();
    out.push_back(c);
  }
  return out;
}

// --- reaper and operator ----------------------------------------------------

ResetCounts reset_expired_leases(pqxx::connection& conn, MsgState from, int max_expired_claims, int limit) {
  auto back = reset_target(from);
  if (!back) log::fatal("reset_expired_leases called for state {}", state_name(from));
  pqxx::work tx(conn);
  ResetCounts counts;
  counts.held = hold_exhausted(tx, from, max_expired_claims, limit);
  auto rows = tx.exec_params(
      "UPDATE messages m SET state = $2, expired_claims = m.expired_claims + (m.lease_owner <> '')::int, "
      "  lease_owner = NULL, lease_token = NULL, lease_expires = NULL "
      "WHERE m.id = ANY(ARRAY(SELECT id FROM messages WHERE state = $1 AND lease_expires < now() "
      "               ORDER BY lease_expires LIMIT $3 FOR UPDATE SKIP LOCKED)) "
      "RETURNING m.id, m.expired_claims",
      static_cast<int>(from), static_cast<int>(*back), limit);
  tx.commit();
  for (const auto& row : rows)
    log::info("msg={} state {}->{} (lease expired, expiry {})", qid(row[0].as<std::int64_t>()), state_name(from),
              state_name(*back), row[1].as<int>());
  counts.reset = static_cast<int>(rows.size());
  return counts;
}

namespace {

// WHERE clause shared by reset_candidates and reset_messages: $1 id, $2 state,
// $3 age in seconds, $4 force, ($5 limit,) $6 sender.
constexpr const char* kResetWhere =
    "state IN (2, 4) AND ($1::bigint IS NULL OR id = $1) AND ($2::smallint IS NULL OR state = $2) "
    "AND ($3::bigint IS NULL OR state_changed_at < now() - make_interval(secs => $3)) "
    "AND ($4 OR lease_expires IS NULL OR lease_expires < now()) AND ($6::text IS NULL OR envelope_from = $6)";

const char* opt_int(const std::optional<std::int64_t>& v, std::string& storage) {
  if (!v) return nullptr;
  storage = std::to_string(*v);
  return storage.c_str();
}

}  // namespace

std::vector<ResetCandidate> reset_candidates(pqxx::transaction_base& tx, const ResetFilter& f) {
  std::string id_s, state_s, age_s;
  auto rows =
      tx.exec_params(fmt::format("SELECT id, state, COALESCE(lease_owner, ''), COALESCE(lease_expires > now(), false) "
                                 "FROM messages WHERE {} ORDER BY id LIMIT $5",
                                 kResetWhere),
                     opt_int(f.id, id_s),
                     opt_int(f.state ? std::optional<std::int64_t>(static_cast<int>(*f.state)) : std::nullopt, state_s),
                     opt_int(f.older_than ? std::optional<std::int64_t>(f.older_than->count()) : std::nullopt, age_s),
                     f.force, f.limit, f.sender ? f.sender->c_str() : nullptr);
  std::vector<ResetCandidate> out;
  for (const auto& row : rows)
    out.push_back({row[0].as<std::int64_t>(), static_cast<MsgState>(row[1].as<int>()), row[2].as<std::string>(),
                   row[3].as<bool>()});
  return out;
}

std::vector<std::int64_t> reset_messages(pqxx::transaction_base& tx, const ResetFilter& f) {
  std::string id_s, state_s, age_s;
  auto rows =
      tx.exec_params(fmt::format("UPDATE messages m SET state = m.state - 1, lease_owner = NULL, lease_token = NULL, "
                                 "  lease_expires = NULL, expired_claims = 0 "
                                 "WHERE m.id IN (SELECT id FROM messages WHERE {} ORDER BY id LIMIT $5 FOR UPDATE) "
                                 "RETURNING m.id, m.state",
                                 kResetWhere),
                     opt_int(f.id, id_s),
                     opt_int(f.state ? std::optional<std::int64_t>(static_cast<int>(*f.state)) : std::nullopt, state_s),
                     opt_int(f.older_than ? std::optional<std::int64_t>(f.older_than->count()) : std::nullopt, age_s),
                     f.force, f.limit, f.sender ? f.sender->c_str() : nullptr);
  std::vector<std::int64_t> ids;
  for (const auto& row : rows) {
    ids.push_back(row[0].as<std::int64_t>());
    auto to = static_cast<MsgState>(row[1].as<int>());
    log::info("msg={} state {}->{} (operator reset)", qid(ids.back()),
              state_name(static_cast<MsgState>(static_cast<int>(to) + 1)), state_name(to));
  }
  return ids;
}

bool hold_unroutable(pqxx::transaction_base& tx, const Lease& lease, const std::string& reason) {
  auto r = tx.exec_params(
      "UPDATE messages SET state = 1, held = true, held_reason = $3, "
      "  lease_owner = NULL, lease_token = NULL, lease_expires = NULL "
      "WHERE id = $1 AND state = 2 AND lease_token = $2::uuid",
      lease.msg_id, lease.token, reason);
  if (r.affected_rows()) log::warn("msg={} held in state {}: {}", lease.msg_id, state_name(MsgState::received), reason);
  return r.affected_rows() == 1;
}

}  // namespace wsmtp::common::pg
