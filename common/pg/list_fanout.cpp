#include "pg/list_fanout.h"

#include <set>

#include "pg/sql_util.h"

namespace wsmtp::common::pg {

const char* const kBulkRoutableMember =
    "((mb.address IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mailbox_forwards f WHERE f.address = mb.address)) "
    " OR (mb.address IS NULL "
    "     AND NOT EXISTS (SELECT 1 FROM domains d WHERE d.name = substring(lm.member from '@([^@]*)$')) "
    "     AND substring(lm.member from '@([^@]*)$') NOT LIKE '[%'))";

namespace {

// The directory is tx's own database: the members are joined in (the
// one-server layout's statement).
const std::string& fanout_sql() {
  static const std::string sql =
      std::string(
          "WITH added AS ("
          "  INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination, "
          "                          prepend_headers, envelope_from_override) "
          "  SELECT f.m, lm.member, f.o, COALESCE(mb.transport, 'relay'), COALESCE(mb.maildir, f.pool), f.h, f.e "
          "  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) "
          "       AS f(m, l, o, h, e, pool) "
          "  JOIN list_members lm ON lm.list_address = f.l "
          "  LEFT JOIN mailboxes mb ON mb.address = lm.member "
          "  WHERE ") +
      kBulkRoutableMember +
      "  ON CONFLICT (message_id, recipient, transport, destination) DO NOTHING "
      "  RETURNING message_id) "
      "SELECT message_id, count(*) FROM added GROUP BY message_id";
  return sql;
}

// The members come from the directory as arrays (read_bulk_members; '' for a
// remote member), already filtered to the bulk-routable ones.
const char* const kFanoutGivenMembers =
    "WITH added AS ("
    "  INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination, "
    "                          prepend_headers, envelope_from_override) "
    "  SELECT f.m, g.member, f.o, COALESCE(NULLIF(g.t, ''), 'relay'), COALESCE(NULLIF(g.d, ''), f.pool), f.h, f.e "
    "  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) "
    "       AS f(m, l, o, h, e, pool) "
    "  JOIN unnest($7::text[], $8::text[], $9::text[], $10::text[]) AS g(l, member, t, d) ON g.l = f.l "
    "  ON CONFLICT (message_id, recipient, transport, destination) DO NOTHING "
    "  RETURNING message_id) "
    "SELECT message_id, count(*) FROM added GROUP BY message_id";

}  // namespace

std::vector<BulkMember> read_bulk_members(pqxx::transaction_base& directory_tx, const std::vector<std::string>& lists) {
  std::vector<BulkMember> out;
  if (lists.empty()) return out;
  std::set<std::string> unique(lists.begin(), lists.end());
  // Planned for each call (not prepared), as the fan-out itself.
  auto rows = directory_tx.exec_params(
      std::string("SELECT lm.list_address, lm.member, COALESCE(mb.transport, ''), COALESCE(mb.maildir, '') "
                  "FROM list_members lm LEFT JOIN mailboxes mb ON mb.address = lm.member "
                  "WHERE lm.list_address = ANY($1::text[]) AND ") +
          kBulkRoutableMember,
      text_array({unique.begin(), unique.end()}));
  out.reserve(rows.size());
  for (const auto& row : rows)
    out.push_back(
        {row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<std::string>()});
  return out;
}

std::map<std::int64_t, int> insert_list_fanouts(pqxx::transaction_base& tx, const std::vector<MessageFanout>& fanouts,
                                                const std::vector<BulkMember>* members) {
  std::map<std::int64_t, int> added;
  if (fanouts.empty()) return added;
  std::vector<std::int64_t> ids;
  std::vector<std::string> lists, originals, headers, senders, pools;
  for (const auto& [msg_id, f] : fanouts) {
    ids.push_back(msg_id);
    lists.push_back(f.list_address);
    originals.push_back(f.original_rcpt);
    headers.push_back(f.prepend_headers);
    senders.push_back(f.envelope_from);
    pools.push_back(f.relay_pool);
  }
  // Planned for each batch (not prepared): how to join members to mailboxes
  // depends on how big the lists are.
  pqxx::result rows;
  if (!members) {
    rows = tx.exec_params(fanout_sql(), bigint_array(ids), text_array(lists), text_array(originals),
                          text_array(headers), text_array(senders), text_array(pools));
  } else {
    std::vector<std::string> member_lists, addresses, transports, destinations;
    for (const auto& m : *members) {
      member_lists.push_back(m.list_address);
      addresses.push_back(m.member);
      transports.push_back(m.transport);
      destinations.push_back(m.destination);
    }
    rows = tx.exec_params(kFanoutGivenMembers, bigint_array(ids), text_array(lists), text_array(originals),
                          text_array(headers), text_array(senders), text_array(pools), text_array(member_lists),
                          text_array(addresses), text_array(transports), text_array(destinations));
  }
  for (const auto& row : rows) added[row[0].as<std::int64_t>()] = row[1].as<int>();
  return added;
}

int insert_list_fanout(pqxx::transaction_base& tx, std::int64_t msg_id, const ListFanout& fanout) {
  auto added = insert_list_fanouts(tx, {{msg_id, fanout}});
  auto it = added.find(msg_id);
  return it == added.end() ? 0 : it->second;
}

}  // namespace wsmtp::common::pg
