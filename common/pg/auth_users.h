// SMTP AUTH credentials (schema 002, table auth_users): adding, changing and
// removing users for wsmtpctl, and the listener's check. Only argon2id hashes
// are stored (common/password.h); passwords are never logged or kept.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// Creates user or, if it exists, replaces its password. Returns true if created.
// Hashing happens here (about 0.1 s). Throws std::invalid_argument for an empty
// or overlong name or an empty password.
bool set_auth_user(pqxx::transaction_base& tx, const std::string& username, std::string_view password);
// Returns false if there was no such user.
bool delete_auth_user(pqxx::transaction_base& tx, const std::string& username);
bool set_auth_user_disabled(pqxx::transaction_base& tx, const std::string& username, bool disabled);
std::vector<std::string> list_auth_users(pqxx::transaction_base& tx);

// The stored hash of an enabled user, or "" if there is none.
std::string auth_user_hash(pqxx::transaction_base& tx, const std::string& username);

// Full check: true only for an enabled user whose password matches. The (slow)
// hash comparison runs after the query; an unknown user costs the same time.
bool verify_auth_user(pqxx::transaction_base& tx, const std::string& username, std::string_view password);

}  // namespace wsmtp::common::pg
