// Owning smart pointers for the C handles we use (libevent, OpenSSL). The one place
// that knows each handle's free function; everything else holds these types.
#pragma once

#include <memory>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

namespace wsmtp::common {

template <auto FreeFn>
struct CFree {
  template <class T>
  void operator()(T* p) const noexcept {
    if (p) FreeFn(p);
  }
};

using EventBasePtr = std::unique_ptr<event_base, CFree<event_base_free>>;
using EventPtr = std::unique_ptr<event, CFree<event_free>>;
using ListenerPtr = std::unique_ptr<evconnlistener, CFree<evconnlistener_free>>;
using BufferEventPtr = std::unique_ptr<bufferevent, CFree<bufferevent_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, CFree<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, CFree<SSL_free>>;

}  // namespace wsmtp::common
