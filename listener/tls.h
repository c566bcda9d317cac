// The listener's TLS server context (RFC 3207 STARTTLS): certificate and key from
// the configuration, modern protocol versions only. Knows nothing of sockets or
// sessions; server.cpp attaches an SSL from this context to a bufferevent.
#pragma once

#include <string>

#include "config.h"
#include "handles.h"

namespace wsmtp::listener {

// Loads config.tls_cert_file (a PEM chain) and config.tls_key_file and checks
// that they belong together. Throws std::runtime_error naming the file and the
// OpenSSL reason.
common::SslCtxPtr make_tls_context(const ListenerConfig& config);

// "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", for the Received:
// header (the form Postfix writes, so log tools recognise it).
std::string describe_tls(const SSL* ssl);

}  // namespace wsmtp::listener
