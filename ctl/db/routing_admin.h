// Administrative writes and listings for the router's tables (schema 003), for
// wsmtpctl: mailing lists and their members, catch-alls, the plus-addressing
// delimiter, forwarding and auto-replies. Addresses are lookup keys
// (lower-case); the domain of a new row is taken from its address and must be
// a local domain (a foreign-key violation otherwise). Adders return false if
// the row already existed, removers false if there was nothing to remove.
// Database refusals (CHECK constraints: control characters, bad list-id) throw.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "directory_types.h"

namespace wsmtp::common::pg {

// --- mailing lists ---------------------------------------------------------
struct ListSpec {
  std::string address;
  std::string owner;
  std::string bounce_address;  // "" -> the owner
  PostingPolicy policy = PostingPolicy::members;
  std::string list_id;  // "" -> local part "." domain (RFC 2919 §3)
  std::string description;
  std::string unsubscribe;  // "" -> <mailto:owner?subject=unsubscribe>
};
bool add_list(pqxx::transaction_base& tx, const ListSpec& list);
bool remove_list(pqxx::transaction_base& tx, const std::string& address);
std::vector<MailingList> list_lists(pqxx::transaction_base& tx,
                                    const std::string& domain);  // "" = all
bool add_list_member(pqxx::transaction_base& tx, const std::string& list, const std::string& member);
bool remove_list_member(pqxx::transaction_base& tx, const std::string& list, const std::string& member);
std::vector<std::string> list_list_members(pqxx::transaction_base& tx, const std::string& list);
const char* posting_policy_name(PostingPolicy policy);
std::optional<PostingPolicy> parse_posting_policy(const std::string& text);

// --- catch-alls and plus-addressing ------------------------------------------
struct CatchallRow {
  std::string domain;
  std::string target;
};
// Sets (or replaces) the catch-all of domain. Returns true if it changed.
bool set_catchall(pqxx::transaction_base& tx, const std::string& domain, const std::string& target);
bool remove_catchall(pqxx::transaction_base& tx, const std::string& domain);
std::vector<CatchallRow> list_catchalls(pqxx::transaction_base& tx);
// delimiter "" disables plus-addressing for the domain. False if no such
// domain.
bool set_recipient_delimiter(pqxx::transaction_base& tx, const std::string& domain, const std::string& delimiter);

// --- forwarding --------------------------------------------------------------
struct ForwardRow {
  std::string address;
  std::string target;
  bool keep_copy = false;
};
bool add_forward(pqxx::transaction_base& tx, const std::string& mailbox, const std::string& target);
bool remove_forward(pqxx::transaction_base& tx, const std::string& mailbox, const std::string& target);
// False if no such mailbox.
bool set_forward_keep_copy(pqxx::transaction_base& tx, const std::string& mailbox, bool keep_copy);
std::vector<ForwardRow> list_forwards(pqxx::transaction_base& tx,
                                      const std::string& domain);  // "" = all

// --- auto-replies ------------------------------------------------------------
struct AutoReplySpec {
  std::string address;
  std::string subject;
  std::string body;
  std::string starts_at;  // timestamptz text; "" = already active
  std::string ends_at;    // timestamptz text; "" = until removed
  std::int64_t period_seconds = 7 * 24 * 3600;
};
// Sets (or replaces) the auto-reply of a mailbox. Replacing it forgets whom the
// old one answered, so the new text reaches everyone once.
void set_autoreply(pqxx::transaction_base& tx, const AutoReplySpec& reply);
bool remove_autoreply(pqxx::transaction_base& tx, const std::string& address);
std::vector<AutoReplySpec> list_autoreplies(pqxx::transaction_base& tx,
                                            const std::string& domain);  // "" = all

}  // namespace wsmtp::common::pg
