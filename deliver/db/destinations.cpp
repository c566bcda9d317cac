#include "db/destinations.h"

#include "pg/prepared.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {

std::vector<HeldSlot> acquire_destination_slots(pqxx::connection& conn, const std::vector<SlotRequest>& requests) {
  std::vector<HeldSlot> held;
  if (requests.empty()) return held;
  std::vector<std::string> transports, destinations;
  std::vector<std::int64_t> limits;
  for (const auto& r : requests) {
    transports.push_back(r.destination.transport);
    destinations.push_back(r.destination.destination);
    limits.push_back(r.limit);
  }
  // LIMIT 1 stops the scan of a destination's slots at the first lock taken,
  // so each destination gets at most one. Outside a transaction block: the
  // locks are the session's, kept across the claim's and finish's commits.
  pqxx::nontransaction tx(conn);
  auto rows = exec_prepared_sql(
      tx, "wsmtp_slots_acquire",
      "SELECT k.ord, (SELECT s.i FROM generate_series(0, k.lim - 1) AS s(i) "
      "               WHERE pg_try_advisory_lock(destination_slot_class(k.t, k.d), destination_slot_base(k.t) + s.i) "
      "               LIMIT 1) "
      "FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY AS k(t, d, lim, ord) ORDER BY k.ord",
      text_array(transports), text_array(destinations), bigint_array(limits));
  for (const auto& row : rows) {
    if (row[1].is_null()) continue;
    held.push_back({requests.at(row[0].as<std::size_t>() - 1).destination, row[1].as<int>()});
  }
  return held;
}

void release_destination_slots(pqxx::connection& conn, const std::vector<HeldSlot>& slots) {
  if (slots.empty()) return;
  std::vector<std::string> transports, destinations;
  std::vector<std::int64_t> numbers;
  for (const auto& s : slots) {
    transports.push_back(s.destination.transport);
    destinations.push_back(s.destination.destination);
    numbers.push_back(s.slot);
  }
  pqxx::nontransaction tx(conn);
  exec_prepared_sql(tx, "wsmtp_slots_release",
                    "SELECT pg_advisory_unlock(destination_slot_class(k.t, k.d), destination_slot_base(k.t) + k.i) "
                    "FROM unnest($1::text[], $2::text[], $3::int[]) AS k(t, d, i)",
                    text_array(transports), text_array(destinations), bigint_array(numbers));
}

std::map<Destination, std::chrono::seconds> record_destination_verdicts(pqxx::transaction_base& tx,
                                                                        const std::vector<DestinationVerdict>& verdicts,
                                                                        const BackoffPolicy& policy) {
  std::map<Destination, std::chrono::seconds> backed_off;
  if (verdicts.empty()) return backed_off;
  std::vector<std::string> transports, destinations, failed, errors;
  for (const auto& v : verdicts) {
    transports.push_back(v.destination.transport);
    destinations.push_back(v.destination.destination);
    failed.push_back(v.failed ? "t" : "f");
    errors.push_back(v.error);
  }
  // A failure reported while the destination is already backed off came from
  // an attempt that started before the backoff (another worker, the same
  // outage): it neither counts nor extends the backoff. Otherwise a few
  // workers failing together in one short outage would double the delay once
  // each, and a relay down for a second would be shunned for minutes. Each
  // doubling needs a probe after the backoff that fails again.
  // The exponent is capped before 2^n so a destination failing for weeks
  // cannot overflow the interval; least() then caps the delay itself.
  auto rows = exec_prepared_sql(
      tx, "wsmtp_destination_verdicts",
      "WITH v AS (SELECT DISTINCT ON (t, d) t, d, f, e FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[]) "
      "           AS v(t, d, f, e) ORDER BY t, d, f DESC), "
      "cleared AS (DELETE FROM destination_backoff b USING v "
      "            WHERE NOT v.f AND b.transport = v.t AND b.destination = v.d), "
      "counted AS ("
      "  INSERT INTO destination_backoff AS b (transport, destination, failures, backoff_until, last_error, failed_at) "
      "  SELECT t, d, 1, CASE WHEN $5 = 1 THEN now() + make_interval(secs => $6) END, e, now() "
      "  FROM v WHERE f "
      "  ON CONFLICT (transport, destination) DO UPDATE SET "
      "    failures = CASE WHEN b.backoff_until > now() THEN b.failures ELSE b.failures + 1 END, "
      "    backoff_until = CASE WHEN b.backoff_until > now() THEN b.backoff_until "
      "      WHEN $5 > 0 AND b.failures + 1 >= $5 "
      "      THEN now() + make_interval(secs => least($7::double precision, "
      "                                               $6 * 2 ^ least(b.failures + 1 - $5, 30))) "
      "      ELSE b.backoff_until END, "
      "    last_error = excluded.last_error, failed_at = now() "
      "  RETURNING transport, destination, ceil(extract(epoch FROM backoff_until - now()))::bigint AS left_s) "
      "SELECT * FROM counted WHERE left_s > 0",
      text_array(transports), text_array(destinations), text_array(failed), text_array(errors), policy.after,
      static_cast<double>(policy.base.count()), static_cast<double>(policy.max.count()));
  for (const auto& row : rows)
    backed_off[{row[0].as<std::string>(), row[1].as<std::string>()}] = std::chrono::seconds(row[2].as<std::int64_t>());
  return backed_off;
}

}  // namespace wsmtp::common::pg
