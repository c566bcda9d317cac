#include "db/directory.h"

#include "pg/directory.h"
#include "pg/list_fanout.h"
#include "pg/prepared.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {
namespace {

std::vector<std::string> text_array_of(const pqxx::field& field) {
  std::vector<std::string> out;
  auto parser = field.as_array();
  for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next())
    if (item.first == pqxx::array_parser::string_value) out.push_back(item.second);
  return out;
}

PostingPolicy policy_of(const std::string& text) {
  if (text == "anyone") return PostingPolicy::anyone;
  if (text == "moderated") return PostingPolicy::moderated;
  return PostingPolicy::members;  // the schema admits nothing else
}

// The columns of one address's description; q is (a: address, dom: domain).
constexpr const char* kDescribeColumns =
    "d.name IS NOT NULL, COALESCE(d.recipient_delimiter, ''), "
    "ARRAY(SELECT target FROM aliases WHERE address = q.a ORDER BY target), "
    "m.address IS NOT NULL, COALESCE(m.maildir, ''), COALESCE(m.transport, ''), COALESCE(m.forward_keep_copy, false), "
    "ARRAY(SELECT target FROM mailbox_forwards WHERE address = q.a ORDER BY target), "
    "EXISTS (SELECT 1 FROM autoreplies ar WHERE ar.address = q.a AND now() >= ar.starts_at AND now() < ar.ends_at), "
    "l.address IS NOT NULL, COALESCE(l.owner, ''), COALESCE(l.bounce_address, ''), "
    "COALESCE(l.posting_policy, ''), COALESCE(l.list_id, ''), COALESCE(l.description, ''), "
    "COALESCE(l.unsubscribe, ''), c.target ";

constexpr const char* kDescribeJoins =
    "LEFT JOIN domains d ON d.name = q.dom "
    "LEFT JOIN mailboxes m ON m.address = q.a "
    "LEFT JOIN lists l ON l.address = q.a "
    "LEFT JOIN catchalls c ON c.domain = q.dom";

// The statements' texts, built once (a prepared statement is defined by name
// and text, so the text must not change between calls).
const std::string& describe_one_sql() {
  static const std::string sql =
      std::string("SELECT ") + kDescribeColumns + "FROM (VALUES ($1::text, $2::text)) AS q(a, dom) " + kDescribeJoins;
  return sql;
}

const std::string& describe_many_sql() {
  static const std::string sql =
      std::string("SELECT q.a, ") + kDescribeColumns +
      "FROM (SELECT DISTINCT a, dom FROM unnest($1::text[], $2::text[]) AS u(a, dom)) AS q " + kDescribeJoins;
  return sql;
}

const std::string& list_members_sql() {
  // One scan of the list (in primary-key order, stopped after limit + 1 rows)
  // classifies every member the way the bulk fan-out will.
  static const std::string sql = std::string(
                                     "SELECT count(*) FILTER (WHERE bulk), "
                                     "  COALESCE(array_agg(member ORDER BY member) FILTER (WHERE NOT bulk), '{}') "
                                     "FROM (SELECT lm.member, ") +
                                 kBulkRoutableMember +
                                 " AS bulk FROM list_members lm LEFT JOIN mailboxes mb ON mb.address = lm.member "
                                 "      WHERE lm.list_address = $1 ORDER BY lm.member LIMIT $2) q";
  return sql;
}

// Reads the description columns starting at column `at`.
AddressInfo address_info(const pqxx::row& row, const std::string& address, int at) {
  auto col = [&row, at](int i) { return row[at + i]; };
  AddressInfo info;
  info.local_domain = col(0).as<bool>();
  info.delimiter = col(1).as<std::string>();
  info.alias_targets = text_array_of(col(2));
  if (col(3).as<bool>()) {
    info.mailbox = MailboxTarget{address, col(4).as<std::string>(), col(5).as<std::string>()};
    info.forward_keep_copy = col(6).as<bool>();
    info.forward_targets = text_array_of(col(7));
    info.autoreply_active = col(8).as<bool>();
  }
  if (col(9).as<bool>())
    info.list = MailingList{address,
                            col(10).as<std::string>(),
                            col(11).as<std::string>(),
                            policy_of(col(12).as<std::string>()),
                            col(13).as<std::string>(),
                            col(14).as<std::string>(),
                            col(15).as<std::string>()};
  if (!col(16).is_null()) info.catchall = col(16).as<std::string>();
  return info;
}

}  // namespace

AddressInfo describe_address(pqxx::transaction_base& tx, const std::string& address, const std::string& domain) {
  auto rows = exec_prepared_sql(tx, "router_describe_one", describe_one_sql().c_str(), address, domain);
  return address_info(rows.at(0), address, 0);
}

std::map<std::string, AddressInfo> describe_addresses(pqxx::transaction_base& tx,
                                                      const std::vector<std::string>& addresses,
                                                      const std::vector<std::string>& domains) {
  std::map<std::string, AddressInfo> out;
  if (addresses.empty()) return out;
  auto rows = exec_prepared_sql(tx, "router_describe_many", describe_many_sql().c_str(), text_array(addresses),
                                text_array(domains));
  for (const auto& row : rows) {
    auto address = row[0].as<std::string>();
    out.emplace(address, address_info(row, address, 1));
  }
  return out;
}

bool is_list_member(pqxx::transaction_base& tx, const std::string& list, const std::string& address) {
  return tx
      .exec_params1("SELECT EXISTS (SELECT 1 FROM list_members WHERE list_address = $1 AND member = $2)", list,
                    address)[0]
      .as<bool>();
}

std::vector<std::string> list_members_to_expand(pqxx::transaction_base& tx, const std::string& list) {
  std::vector<std::string> out;
  auto rows = tx.exec_params(std::string("SELECT lm.member FROM list_members lm "
                                         "LEFT JOIN mailboxes mb ON mb.address = lm.member "
                                         "WHERE lm.list_address = $1 AND NOT ") +
                                 kBulkRoutableMember + " ORDER BY lm.member",
                             list);
  for (const auto& row : rows) out.push_back(row[0].as<std::string>());
  return out;
}

ListMembers list_members(pqxx::transaction_base& tx, const std::string& list, std::int64_t limit) {
  // Planned for each list (not prepared): a plan good for a 10-member list
  // reads a 100,000-member one badly, and the other way round.
  auto row = tx.exec_params1(list_members_sql(), list, limit + 1);
  return {text_array_of(row[1]), row[0].as<std::int64_t>()};
}

void RouterDirectory::prefetch(const std::vector<std::string>& addresses, const std::vector<std::string>& domains) {
  std::vector<std::string> want, want_domains;
  for (std::size_t i = 0; i < addresses.size() && i < domains.size(); ++i)
    if (!described_.count(addresses[i])) {
      want.push_back(addresses[i]);
      want_domains.push_back(domains[i]);
    }
  if (want.empty()) return;
  described_.merge(describe_addresses(tx_, want, want_domains));
}

AddressInfo RouterDirectory::describe(const std::string& address, const std::string& domain) {
  auto it = described_.find(address);
  if (it == described_.end()) it = described_.emplace(address, describe_address(tx_, address, domain)).first;
  return it->second;
}

ListMembers RouterDirectory::list_members(const std::string& list, std::int64_t limit) {
  auto key = std::make_pair(list, limit);
  auto it = members_.find(key);
  if (it == members_.end()) it = members_.emplace(key, pg::list_members(tx_, list, limit)).first;
  return it->second;
}

bool RouterDirectory::is_list_member(const std::string& list, const std::string& address) {
  return pg::is_list_member(tx_, list, address);
}

std::vector<std::string> RouterDirectory::list_members_to_expand(const std::string& list) {
  return pg::list_members_to_expand(tx_, list);
}

bool RouterDirectory::is_local_domain(const std::string& domain) { return pg::is_local_domain(tx_, domain); }

std::optional<MailboxTarget> RouterDirectory::find_mailbox(const std::string& address) {
  return pg::find_mailbox(tx_, address);
}

std::vector<std::string> RouterDirectory::alias_targets(const std::string& address) {
  return pg::alias_targets(tx_, address);
}

}  // namespace wsmtp::common::pg
