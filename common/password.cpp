// argon2id via libsodium: a well-kept library with a memory-hard algorithm, so a
// stolen auth_users table is expensive to crack. The interactive limits keep one
// verification around 0.1 s and 64 MiB, paid on a store worker thread, never on
// an event loop.
#include "password.h"

#include <sodium.h>

#include <mutex>
#include <stdexcept>

namespace wsmtp::common {
namespace {

void ensure_sodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium initialisation failed");
  });
}

}  // namespace

std::string hash_password(std::string_view password) {
  ensure_sodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                            crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw std::runtime_error("password hashing failed (out of memory)");
  return std::string(out);
}

bool verify_password(const std::string& hash, std::string_view password) {
  ensure_sodium();
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

void verify_password_dummy(std::string_view password) {
  // Computed once per process; verifying against it costs what a real check costs.
  static const std::string dummy = hash_password("wsmtp-dummy-password");
  verify_password(dummy, password);
}

}  // namespace wsmtp::common
