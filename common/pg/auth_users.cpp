#include "pg/auth_users.h"

#include <stdexcept>

#include "password.h"

namespace wsmtp::common::pg {

bool set_auth_user(pqxx::transaction_base& tx, const std::string& username, std::string_view password) {
  if (username.empty() || username.size() > 255) throw std::invalid_argument("user name must be 1-255 characters");
  if (password.empty()) throw std::invalid_argument("password must not be empty");
  auto hash = hash_password(password);
  // xmax = 0 only for a freshly inserted row: tells "created" from "updated".
  auto row = tx.exec_params1(
      "INSERT INTO auth_users (username, password_hash) VALUES ($1, $2) "
      "ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now() "
      "RETURNING (xmax = 0)",
      username, hash);
  return row[0].as<bool>();
}

bool delete_auth_user(pqxx::transaction_base& tx, const std::string& username) {
  return tx.exec_params("DELETE FROM auth_users WHERE username = $1", username).affected_rows() == 1;
}

bool set_auth_user_disabled(pqxx::transaction_base& tx, const std::string& username, bool disabled) {
  return tx.exec_params("UPDATE auth_users SET disabled = $2, updated_at = now() WHERE username = $1", username,
                        disabled)
             .affected_rows() == 1;
}

std::vector<std::string> list_auth_users(pqxx::transaction_base& tx) {
  std::vector<std::string> out;
  for (const auto& row : tx.exec("SELECT username FROM auth_users ORDER BY username"))
    out.push_back(row[0].as<std::string>());
  return out;
}

std::string auth_user_hash(pqxx::transaction_base& tx, const std::string& username) {
  auto rows = tx.exec_params("SELECT password_hash FROM auth_users WHERE username = $1 AND NOT disabled", username);
  return rows.empty() ? std::string() : rows[0][0].as<std::string>();
}

bool verify_auth_user(pqxx::transaction_base& tx, const std::string& username, std::string_view password) {
  auto hash = auth_user_hash(tx, username);
  if (hash.empty()) {
    verify_password_dummy(password);
    return false;
  }
  return verify_password(hash, password);
}

}  // namespace wsmtp::common::pg
