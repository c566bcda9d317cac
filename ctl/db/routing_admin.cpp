#include "db/routing_admin.h"

namespace wsmtp::common::pg {
namespace {

// The domain part of a lookup key, computed by the database so the row's
// CHECK (address LIKE '%@' || domain) holds by construction.
constexpr const char* kDomainOf = "substring($1 from '@([^@]*)$')";

bool changed(const pqxx::result& r) { return r.affected_rows() > 0; }

}  // namespace

const char* posting_policy_name(PostingPolicy policy) {
  switch (policy) {
    case PostingPolicy::anyone:
      return "anyone";
    case PostingPolicy::members:
      return "members";
    case PostingPolicy::moderated:
      return "moderated";
  }
  return "members";
}

std::optional<PostingPolicy> parse_posting_policy(const std::string& text) {
  for (auto p : {PostingPolicy::anyone, PostingPolicy::members, PostingPolicy::moderated})
    if (text == posting_policy_name(p)) return p;
  return std::nullopt;
}

bool add_list(pqxx::transaction_base& tx, const ListSpec& l) {
  return changed(tx.exec_params(std::string("INSERT INTO lists (address, domain, owner, bounce_address, "
                                            "posting_policy, list_id, description, "
                                            "                   unsubscribe) "
                                            "VALUES ($1, ") +
                                    kDomainOf +
                                    ", $2, COALESCE(NULLIF($3, ''), $2), $4, "
                                    "        COALESCE(NULLIF($5, ''), replace($1, '@', '.')), $6, "
                                    "        COALESCE(NULLIF($7, ''), '<mailto:' || $2 || "
                                    "'?subject=unsubscribe>')) "
                                    "ON CONFLICT (address) DO NOTHING",
                                l.address, l.owner, l.bounce_address, posting_policy_name(l.policy), l.list_id,
                                l.description, l.unsubscribe));
}

bool remove_list(pqxx::transaction_base& tx, const std::string& address) {
  return changed(tx.exec_params("DELETE FROM lists WHERE address = $1", address));
}

std::vector<MailingList> list_lists(pqxx::transaction_base& tx, const std::string& domain) {
  std::vector<MailingList> out;
  auto rows = tx.exec_params(
      "SELECT address, owner, bounce_address, posting_policy, "
      "list_id, description, unsubscribe FROM lists "
      "WHERE $1 = '' OR domain = $1 ORDER BY address",
      domain);
  for (const auto& r : rows)
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                   parse_posting_policy(r[3].as<std::string>()).value_or(PostingPolicy::members),
                   r[4].as<std::string>(), r[5].as<std::string>(), r[6].as<std::string>()});
  return out;
}

bool add_list_member(pqxx::transaction_base& tx, const std::string& list, const std::string& member) {
  return changed(
      tx.exec_params("INSERT INTO list_members (list_address, member) VALUES "
                     "($1, $2) ON CONFLICT DO NOTHING",
                     list, member));
}

bool remove_list_member(pqxx::transaction_base& tx, const std::string& list, const std::string& member) {
  return changed(tx.exec_params("DELETE FROM list_members WHERE list_address = $1 AND member = $2", list, member));
}

std::vector<std::string> list_list_members(pqxx::transaction_base& tx, const std::string& list) {
  std::vector<std::string> out;
  for (const auto& r : tx.exec_params("SELECT member FROM list_members WHERE "
                                      "list_address = $1 ORDER BY member",
                                      list))
    out.push_back(r[0].as<std::string>());
  return out;
}

bool set_catchall(pqxx::transaction_base& tx, const std::string& domain, const std::string& target) {
  return changed(
      tx.exec_params("INSERT INTO catchalls AS c (domain, target) VALUES ($1, $2) "
                     "ON CONFLICT (domain) DO UPDATE SET target = EXCLUDED.target, created_at "
                     "= now() "
                     "WHERE c.target IS DISTINCT FROM EXCLUDED.target",
                     domain, target));
}

bool remove_catchall(pqxx::transaction_base& tx, const std::string& domain) {
  return changed(tx.exec_params("DELETE FROM catchalls WHERE domain = $1", domain));
}

std::vector<CatchallRow> list_catchalls(pqxx::transaction_base& tx) {
  std::vector<CatchallRow> out;
  for (const auto& r : tx.exec("SELECT domain, target FROM catchalls ORDER BY domain"))
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>()});
  return out;
}

bool set_recipient_delimiter(pqxx::transaction_base& tx, const std::string& domain, const std::string& delimiter) {
  return changed(tx.exec_params("UPDATE domains SET recipient_delimiter = $2 WHERE name = $1", domain, delimiter));
}

bool add_forward(pqxx::transaction_base& tx, const std::string& mailbox, const std::string& target) {
  return changed(
      tx.exec_params("INSERT INTO mailbox_forwards (address, target) VALUES "
                     "($1, $2) ON CONFLICT DO NOTHING",
                     mailbox, target));
}

bool remove_forward(pqxx::transaction_base& tx, const std::string& mailbox, const std::string& target) {
  return changed(tx.exec_params("DELETE FROM mailbox_forwards WHERE address = $1 AND target = $2", mailbox, target));
}

bool set_forward_keep_copy(pqxx::transaction_base& tx, const std::string& mailbox, bool keep_copy) {
  return changed(tx.exec_params("UPDATE mailboxes SET forward_keep_copy = $2 WHERE address = $1", mailbox, keep_copy));
}

std::vector<ForwardRow> list_forwards(pqxx::transaction_base& tx, const std::string& domain) {
  std::vector<ForwardRow> out;
  auto rows = tx.exec_params(
      "SELECT f.address, f.target, m.forward_keep_copy FROM mailbox_forwards f "
      "JOIN mailboxes m ON m.address = f.address WHERE $1 = '' OR m.domain = "
      "$1 ORDER BY f.address, f.target",
      domain);
  for (const auto& r : rows) out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<bool>()});
  return out;
}

void set_autoreply(pqxx::transaction_base& tx, const AutoReplySpec& a) {
  tx.exec_params0(
      "INSERT INTO autoreplies (address, subject, body, starts_at, ends_at, "
      "period) "
      "VALUES ($1, $2, $3, COALESCE(NULLIF($4, '')::timestamptz, '-infinity'), "
      "        COALESCE(NULLIF($5, '')::timestamptz, 'infinity'), "
      "make_interval(secs => $6)) "
      "ON CONFLICT (address) DO UPDATE SET subject = EXCLUDED.subject, body = "
      "EXCLUDED.body, "
      "  starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, period = "
      "EXCLUDED.period, created_at = now()",
      a.address, a.subject, a.body, a.starts_at, a.ends_at, static_cast<double>(a.period_seconds));
  tx.exec_params0("DELETE FROM autoreply_sent WHERE address = $1", a.address);
}

bool remove_autoreply(pqxx::transaction_base& tx, const std::string& address) {
  return changed(tx.exec_params("DELETE FROM autoreplies WHERE address = $1", address));
}

std::vector<AutoReplySpec> list_autoreplies(pqxx::transaction_base& tx, const std::string& domain) {
  std::vector<AutoReplySpec> out;
  auto rows = tx.exec_params(
      "SELECT a.address, a.subject, a.body, "
      "  CASE WHEN a.starts_at = '-infinity' THEN '' ELSE a.starts_at::text "
      "END, "
      "  CASE WHEN a.ends_at = 'infinity' THEN '' ELSE a.ends_at::text END, "
      "  extract(epoch FROM a.period)::bigint "
      "FROM autoreplies a JOIN mailboxes m ON m.address = a.address "
      "WHERE $1 = '' OR m.domain = $1 ORDER BY a.address",
      domain);
  for (const auto& r : rows)
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(), r[3].as<std::string>(),
                   r[4].as<std::string>(), r[5].as<std::int64_t>()});
  return out;
}

}  // namespace wsmtp::common::pg
