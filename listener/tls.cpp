// TLS 1.2 is the floor (RFC 8996 retired 1.0/1.1). No client certificates are
// asked for: SMTP AUTH, not TLS, identifies submitting users here.
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>

#include <fmt/format.h>

namespace wsmtp::listener {
namespace {

std::string openssl_reason() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

}  // namespace

common::SslCtxPtr make_tls_context(const ListenerConfig& config) {
  common::SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw std::runtime_error("SSL_CTX_new: " + openssl_reason());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Renegotiation is a CPU-exhaustion vector and SMTP never needs it.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), config.tls_cert_file.c_str()) != 1)
    throw std::runtime_error(fmt::format("cannot load certificate {}: {}", config.tls_cert_file, openssl_reason()));
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), config.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    throw std::runtime_error(fmt::format("cannot load key {}: {}", config.tls_key_file, openssl_reason()));
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    throw std::runtime_error(fmt::format("key {} does not match certificate {}: {}", config.tls_key_file,
                                         config.tls_cert_file, openssl_reason()));
  return ctx;
}

std::string describe_tls(const SSL* ssl) {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  int alg_bits = 0;
  int bits = cipher ? SSL_CIPHER_get_bits(cipher, &alg_bits) : 0;
  return fmt::format("using {} with cipher {} ({}/{} bits)", SSL_get_version(ssl),
                     cipher ? SSL_CIPHER_get_name(cipher) : "unknown", bits, alg_bits);
}

}  // namespace wsmtp::listener
