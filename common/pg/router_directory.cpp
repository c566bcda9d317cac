#include "pg/router_directory.h"

#include "pg/router_lists.h"
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

}  // namespace

namespace {

// The columns of one address's description; q is (a: address, dom: domain).
constexpr const char* kDescribeColumns =
    "d.name IS NOT NULL, COALESCE(d.recipient_delimiter, ''), "
    "ARRAY(SELECT target FROM aliases WHERE address = q.a ORDER BY target), "
    "m.address IS NOT NULL, COALESCE(m.maildir, ''), COALESCE(m.transport, "
    "''), "
    "COALESCE(m.forward_keep_copy, false), "
    "ARRAY(SELECT target FROM mailbox_forwards WHERE address = q.a ORDER BY "
    "target), "
    "EXISTS (SELECT 1 FROM autoreplies ar WHERE ar.address = q.a AND now() >= "
    "ar.starts_at AND now() < ar.ends_at), "
    "l.address IS NOT NULL, COALESCE(l.owner, ''), COALESCE(l.bounce_address, "
    "''), "
    "COALESCE(l.posting_policy, ''), COALESCE(l.list_id, ''), "
    "COALESCE(l.description, ''), "
    "COALESCE(l.unsubscribe, ''), c.target ";

constexpr const char* kDescribeJoins =
    "LEFT JOIN domains d ON d.name = q.dom "
    "LEFT JOIN mailboxes m ON m.address = q.a "
    "LEFT JOIN lists l ON l.address = q.a "
    "LEFT JOIN catchalls c ON c.domain = q.dom";

// Reads kDescribeColumns starting at column `at`.
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
  auto row = tx.exec_params1(
      std::string("SELECT ") + kDescribeColumns + "FROM (VALUES ($1::text, $2::text)) AS q(a, dom) " + kDescribeJoins,
      address, domain);
  return address_info(row, address, 0);
}

std::map<std::string, AddressInfo> describe_addresses(pqxx::transaction_base& tx,
                                                      const std::vector<std::string>& addresses,
                                                      const std::vector<std::string>& domains) {
  std::map<std::string, AddressInfo> out;
  if (addresses.empty()) return out;
  auto rows = tx.exec_params(std::string("SELECT q.a, ") + kDescribeColumns +
                                 "FROM (SELECT DISTINCT a, dom FROM unnest($1::text[], "
                                 "$2::text[]) AS u(a, dom)) AS q " +
                                 kDescribeJoins,
                             text_array(addresses), text_array(domains));
  for (const auto& row : rows) {
    auto address = row[0].as<std::string>();
    out.emplace(address, address_info(row, address, 1));
  }
  return out;
}

bool is_list_member(pqxx::transaction_base& tx, const std::string& list, const std::string& address) {
  return tx
      .exec_params1(
          "SELECT EXISTS (SELECT 1 FROM list_members WHERE "
          "list_address = $1 AND member = $2)",
          list, address)[0]
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

}  // namespace wsmtp::common::pg
