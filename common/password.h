// Password hashing for SMTP AUTH credentials: argon2id through libsodium's
// crypto_pwhash_str (salt and cost parameters are stored inside the hash string).
// Pure: no database; pg/auth_users.h stores and fetches the hashes.
#pragma once

#include <string>
#include <string_view>

namespace wsmtp::common {

// Hashes password with argon2id at libsodium's "interactive" cost. Throws
// std::runtime_error if libsodium cannot initialise or runs out of memory.
std::string hash_password(std::string_view password);

// True if password matches hash (a crypto_pwhash_str string). A malformed hash
// is a mismatch. Constant-time in the password (libsodium).
bool verify_password(const std::string& hash, std::string_view password);

// Spends about the time of one verification without a real hash, so an unknown
// user name cannot be told from a wrong password by timing.
void verify_password_dummy(std::string_view password);

}  // namespace wsmtp::common
