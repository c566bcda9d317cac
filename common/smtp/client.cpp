#include "smtp/client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cctype>
#include <cstdlib>
#include <utility>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "log.h"
#include "smtp/dot_stuff.h"

namespace wsmtp::common::smtp {
namespace {

constexpr std::size_t kMaxReplyLines = 200;  // a reply longer than this is a broken server
constexpr std::size_t kMaxLineLength = 4096;
constexpr std::size_t kBodyHighWater = 256 * 1024;  // bytes queued before we wait for the socket
constexpr std::size_t kBodyLowWater = 64 * 1024;

timeval to_timeval(std::chrono::seconds s) { return timeval{static_cast<time_t>(s.count()), 0}; }

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string ssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "handshake failed" : out;
}

bool is_ip_literal(const std::string& host) {
  in6_addr address{};
  return ::inet_pton(AF_INET, host.c_str(), &address) == 1 || ::inet_pton(AF_INET6, host.c_str(), &address) == 1;
}

}  // namespace

ServerExtensions parse_ehlo(const Reply& reply) {
  ServerExtensions ext;
  ext.esmtp = true;
  std::size_t start = 0;
  bool first = true;
  // The first line is the greeting text; each further line names one extension.
  while (start <= reply.text.size()) {
    auto end = reply.text.find('\n', start);
    if (end == std::string::npos) end = reply.text.size();
    auto line = upper(std::string_view(reply.text).substr(start, end - start));
    start = end + 1;
    if (std::exchange(first, false)) continue;
    if (line == "PIPELINING")
      ext.pipelining = true;
    else if (line == "8BITMIME")
      ext.eightbitmime = true;
    else if (line == "STARTTLS")
      ext.starttls = true;
    else if (line.rfind("SIZE", 0) == 0 && (line.size() == 4 || line[4] == ' ')) {
      ext.size = true;
      ext.size_limit = line.size() > 5 ? std::strtoull(line.c_str() + 5, nullptr, 10) : 0;
    }
  }
  return ext;
}

std::string mail_command(const Envelope& envelope, const ServerExtensions& ext) {
  std::string mail = "MAIL FROM:<" + envelope.from + ">";
  if (ext.size && envelope.size > 0) mail += fmt::format(" SIZE={}", envelope.size);
  if (envelope.declare_8bit && ext.eightbitmime) mail += " BODY=8BITMIME";
  return mail;
}

const Reply& TransactionResult::outcome(std::size_t i) const {
  if (!mail.is_positive()) return mail;
  if (i < recipients.size() && !recipients[i].is_positive()) return recipients[i];
  if (i < lmtp.size() && lmtp[i]) return *lmtp[i];
  return *data;
}

SmtpClient::SmtpClient(ClientOptions options) : options_(std::move(options)), base_(event_base_new()) {
  if (!base_) throw std::runtime_error("event_base_new failed");
  if (options_.tls == TlsPolicy::none) return;
  tls_ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!tls_ctx_) throw std::runtime_error("SSL_CTX_new: " + ssl_errors());
  SSL_CTX_set_min_proto_version(tls_ctx_.get(), TLS1_2_VERSION);
  if (options_.tls == TlsPolicy::required) {
    SSL_CTX_set_verify(tls_ctx_.get(), SSL_VERIFY_PEER, nullptr);
    int ok = options_.ca_file.empty()
                 ? SSL_CTX_set_default_verify_paths(tls_ctx_.get())
                 : SSL_CTX_load_verify_locations(tls_ctx_.get(), options_.ca_file.c_str(), nullptr);
    if (ok != 1) throw std::runtime_error("loading TLS roots " + options_.ca_file + ": " + ssl_errors());
  } else {
    // Opportunistic TLS (RFC 7435): encryption against passive eavesdroppers;
    // an unverifiable certificate is still better than plaintext.
    SSL_CTX_set_verify(tls_ctx_.get(), SSL_VERIFY_NONE, nullptr);
  }
}

SmtpClient::~SmtpClient() { close(); }

void SmtpClient::on_read(bufferevent*, void* self) noexcept {
  auto* c = static_cast<SmtpClient*>(self);
  try {
    c->read_lines();
  } catch (const std::exception& e) {
    c->failed_ = true;
    c->failure_ = e.what();
  }
}

void SmtpClient::on_write(bufferevent*, void*) noexcept {}

void SmtpClient::on_event(bufferevent*, short what, void* self) noexcept {
  static_cast<SmtpClient*>(self)->handle_event(what);
}

void SmtpClient::handle_event(short what) {
  if (what & BEV_EVENT_CONNECTED) {
    if (tcp_connected_) tls_connected_ = true;
    tcp_connected_ = true;
    return;
  }
  failed_ = true;
  if (what & BEV_EVENT_TIMEOUT)
    failure_ = "timed out";
  else if (what & BEV_EVENT_EOF)
    failure_ = "connection closed by the server";
  else if (tcp_connected_ && options_.tls != TlsPolicy::none && bufferevent_get_openssl_error(bev_.get()))
    failure_ = "TLS: " + ssl_errors();
  else
    failure_ = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
}

void SmtpClient::read_lines() {
  evbuffer* in = bufferevent_get_input(bev_.get());
  for (;;) {
    std::size_t len = 0;
    char* raw = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
    if (!raw) {
      if (evbuffer_get_length(in) > kMaxLineLength) throw ClientError("reply line too long");
      return;
    }
    std::string line(raw, len);
    std::free(raw);
    if (line.size() > kMaxLineLength || lines_.size() >= kMaxReplyLines) throw ClientError("reply too long");
    bool last = line.size() == 3 || (line.size() > 3 && line[3] == ' ');
    lines_.push_back(std::move(line));
    if (!last) continue;
    auto reply = parse_reply(lines_);
    lines_.clear();
    if (!reply) throw ClientError("malformed reply from the server");
    replies_.push_back(std::move(*reply));
  }
}

[[noreturn]] void SmtpClient::broken(const std::string& why) {
  failed_ = true;
  auto message = fmt::format("{}: {}", peer_, why);
  close();
  throw ClientError(message);
}

Reply SmtpClient::read_reply(std::chrono::seconds timeout) {
  auto tv = to_timeval(timeout);
  bufferevent_set_timeouts(bev_.get(), &tv, nullptr);
  while (replies_.empty() && !failed_) event_base_loop(base_.get(), EVLOOP_ONCE);
  if (replies_.empty()) broken(failure_);
  Reply r = std::move(replies_.front());
  replies_.pop_front();
  if (options_.on_progress) options_.on_progress();
  log::debug("smtp client {} <- {} {}", peer_, r.code, r.text);
  return r;
}

void SmtpClient::write(std::string_view bytes) {
  if (!bev_ || failed_) broken(failure_.empty() ? "not connected" : failure_);
  if (bufferevent_write(bev_.get(), bytes.data(), bytes.size()) != 0) broken("write failed");
}

// Runs the loop until at most `below` bytes wait in the output buffer; the
// write timeout catches a server that stopped reading.
void SmtpClient::drain_output(std::size_t below, std::chrono::seconds timeout) {
  auto tv = to_timeval(timeout);
  bufferevent_set_timeouts(bev_.get(), nullptr, &tv);
  while (!failed_ && evbuffer_get_length(bufferevent_get_output(bev_.get())) > below)
    event_base_loop(base_.get(), EVLOOP_ONCE);
  if (failed_) broken(failure_);
  if (options_.on_progress) options_.on_progress();
}

Reply SmtpClient::command(const std::string& line) {
  log::debug("smtp client {} -> {}", peer_, line);
  write(line + "\r\n");
  return read_reply(options_.command_timeout);
}

bool SmtpClient::try_connect(const sockaddr* address, socklen_t length) {
  failed_ = false;
  tcp_connected_ = false;
  bev_.reset(bufferevent_socket_new(base_.get(), -1, BEV_OPT_CLOSE_ON_FREE));
  if (!bev_) throw ClientError("bufferevent_socket_new failed");
  bufferevent_setcb(bev_.get(), &SmtpClient::on_read, &SmtpClient::on_write, &SmtpClient::on_event, this);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  auto tv = to_timeval(options_.connect_timeout);
  bufferevent_set_timeouts(bev_.get(), &tv, &tv);
  if (bufferevent_socket_connect(bev_.get(), address, static_cast<int>(length)) != 0) {
    failure_ = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    return false;
  }
  while (!tcp_connected_ && !failed_) event_base_loop(base_.get(), EVLOOP_ONCE);
  return tcp_connected_ && !failed_;
}

void SmtpClient::connect(const std::string& host, int port) {
  if (!host.empty() && host[0] == '/') {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (host.size() >= sizeof un.sun_path) throw ClientError(peer_ + ": socket path too long");
    host.copy(un.sun_path, host.size());
    if (try_connect(reinterpret_cast<const sockaddr*>(&un), sizeof un)) return;
    bev_.reset();
    throw ClientError(fmt::format("{}: connect failed: {}", peer_, failure_));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  // Blocking resolution is fine here: relays are a handful of configured names,
  // and this runs in the caller's code, not in a libevent callback.
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) throw ClientError(fmt::format("{}: cannot resolve: {}", peer_, gai_strerror(rc)));
  std::unique_ptr<addrinfo, CFree<freeaddrinfo>> addresses(found);
  std::string last_error = "no address";
  for (addrinfo* a = addresses.get(); a; a = a->ai_next) {
    if (try_connect(a->ai_addr, a->ai_addrlen)) return;
    last_error = failure_;
  }
  bev_.reset();
  throw ClientError(fmt::format("{}: connect failed: {}", peer_, last_error));
}

void SmtpClient::start_tls(const std::string& host) {
  SslPtr ssl(SSL_new(tls_ctx_.get()));
  if (!ssl) broken("SSL_new: " + ssl_errors());
  // A relay configured by address is verified against the certificate's IP
  // subjectAltName (RFC 5280 §4.2.1.6), and gets no SNI: RFC 6066 §3 allows
  // only host names there.
  const bool literal = is_ip_literal(host);
  if (!literal) SSL_set_tlsext_host_name(ssl.get(), host.c_str());
  if (options_.tls == TlsPolicy::required) {
    int named = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), host.c_str())
                        : SSL_set1_host(ssl.get(), host.c_str());  // RFC 6125 name check
    if (named != 1) broken("cannot set the name to verify: " + ssl_errors());
  }
  bufferevent* filtered = bufferevent_openssl_filter_new(base_.get(), bev_.get(), ssl.get(), BUFFEREVENT_SSL_CONNECTING,
                                                         BEV_OPT_CLOSE_ON_FREE);
  if (!filtered) broken("cannot start TLS");
  // The filter owns the socket bufferevent and the SSL now (BEV_OPT_CLOSE_ON_FREE).
  static_cast<void>(bev_.release());
  static_cast<void>(ssl.release());
  bev_.reset(filtered);
  bufferevent_setcb(bev_.get(), &SmtpClient::on_read, &SmtpClient::on_write, &SmtpClient::on_event, this);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  auto tv = to_timeval(options_.connect_timeout);
  bufferevent_set_timeouts(bev_.get(), &tv, &tv);
  while (!tls_connected_ && !failed_) event_base_loop(base_.get(), EVLOOP_ONCE);
  // With verification on, a rejected certificate fails the handshake itself;
  // the verify result says why better than the handshake error does.
  long verify =
      options_.tls == TlsPolicy::required ? SSL_get_verify_result(bufferevent_openssl_get_ssl(bev_.get())) : X509_V_OK;
  if (verify != X509_V_OK) broken(std::string("certificate not verified: ") + X509_verify_cert_error_string(verify));
  if (failed_) broken(failure_);
  ext_.tls_active = true;
}

Reply SmtpClient::ehlo() {
  auto reply = command((options_.lmtp ? "LHLO " : "EHLO ") + options_.helo_name);
  if (reply.is_positive()) {
    bool tls = ext_.tls_active;
    ext_ = parse_ehlo(reply);
    ext_.tls_active = tls;
    return reply;
  }
  // RFC 5321 §3.2: a server that does not know EHLO answers 500/502; fall back to HELO.
  if (!options_.lmtp && (reply.code == 500 || reply.code == 502)) {
    reply = command("HELO " + options_.helo_name);
    ext_ = {};
  }
  return reply;
}

std::optional<Reply> SmtpClient::greet(const std::string& host) {
  auto refuse = [this](Reply r) {
    quit();
    return std::optional<Reply>(std::move(r));
  };
  auto greeting = read_reply(options_.command_timeout);
  if (greeting.code != 220) return refuse(greeting);
  auto hello = ehlo();
  if (!hello.is_positive()) return refuse(hello);
  if (options_.tls == TlsPolicy::none) return std::nullopt;
  if (ext_.starttls) {
    auto go = command("STARTTLS");
    if (go.code == 220) {
      start_tls(host);
      auto again = ehlo();  // RFC 3207 §4.2: forget everything learnt before TLS
      if (!again.is_positive()) return refuse(again);
      return std::nullopt;
    }
    if (options_.tls == TlsPolicy::required) return refuse(go);
    return std::nullopt;
  }
  if (options_.tls == TlsPolicy::required)
    return refuse(Reply{421, {4, 7, 10}, "the relay does not offer STARTTLS, and TLS is required for this pool"});
  return std::nullopt;
}

std::optional<Reply> SmtpClient::open(const std::string& host, int port) {
  close();
  failed_ = false;
  failure_.clear();
  ext_ = {};
  peer_ = fmt::format("{}:{}", host, port);
  connect(host, port);
  return greet(host);
}

void SmtpClient::transmit_body(const std::function<void(const ChunkSink&)>& produce) {
  DotStuffer stuffer;
  std::string out;
  try {
    produce([&](std::string_view chunk) {
      out.clear();
      stuffer.feed(chunk, out);
      write(out);
      if (evbuffer_get_length(bufferevent_get_output(bev_.get())) > kBodyHighWater)
        drain_output(kBodyLowWater, options_.data_timeout);
    });
  } catch (const ClientError&) {
    throw;
  } catch (...) {
    // Half a body cannot be taken back: drop the connection so the server
    // discards the transaction (RFC 5321 §3.3: no final dot, no message).
    close();
    throw;
  }
  out.clear();
  stuffer.finish(out);
  write(out);
  drain_output(0, options_.data_timeout);
}

TransactionResult SmtpClient::send(const Envelope& envelope, const std::function<void(const ChunkSink&)>& produce) {
  std::string mail = mail_command(envelope, ext_);
  TransactionResult result;
  result.recipients.reserve(envelope.recipients.size());
  if (ext_.pipelining) {
    // RFC 2920: MAIL, every RCPT and DATA in one write, then the replies in order.
    std::string batch = mail + "\r\n";
    for (const auto& r : envelope.recipients) batch += "RCPT TO:<" + r + ">\r\n";
    batch += "DATA\r\n";
    write(batch);
    result.mail = read_reply(options_.command_timeout);
    for (std::size_t i = 0; i < envelope.recipients.size(); ++i)
      result.recipients.push_back(read_reply(options_.command_timeout));
    result.data = read_reply(options_.command_timeout);
  } else {
    result.mail = command(mail);
    if (!result.mail.is_positive()) {
      command("RSET");
      return result;
    }
    for (const auto& r : envelope.recipients) result.recipients.push_back(command("RCPT TO:<" + r + ">"));
  }
  bool any_accepted = result.mail.is_positive();
  if (any_accepted) {
    any_accepted = false;
    for (const auto& r : result.recipients) any_accepted = any_accepted || r.is_positive();
  }
  if (!ext_.pipelining && any_accepted) result.data = command("DATA");
  if (result.data && result.data->code == 354) {
    if (any_accepted) {
      transmit_body(produce);
    } else {
      write(".\r\n");  // RFC 2920 §3.1: DATA was accepted without recipients; end it empty
    }
    try {
      result.data = read_reply(any_accepted ? options_.data_timeout : options_.command_timeout);
      if (options_.lmtp && any_accepted) read_lmtp_replies(result);
    } catch (const ClientError& e) {
      // The whole message and its final dot were sent: the server may have
      // taken it even though its reply never came (RFC 5321 §6.1, RFC 1047),
      // and the retry that follows may deliver it a second time. Say so in the
      // log line, as an admin tracing a duplicate needs to know.
      if (!any_accepted) throw;
      throw ClientError(std::string(e.what()) +
                        " after the end of data: the server may have taken the message, which may then be sent "
                        "more than once");
    }
  }
  bool delivered = any_accepted && result.data && result.data->is_positive();
  if (!delivered && connected()) command("RSET");
  return result;
}

bool SmtpClient::alive() noexcept {
  if (!connected()) return false;
  try {
    if (command("NOOP").is_positive()) return true;
  } catch (const std::exception& e) {
    log::debug("smtp client {}: idle connection lost: {}", peer_, e.what());
  }
  close();
  return false;
}

// RFC 2033 §4.2: after the final dot, one reply per accepted RCPT, in order;
// the first of them was already read as the data reply.
void SmtpClient::read_lmtp_replies(TransactionResult& result) {
  result.lmtp.assign(result.recipients.size(), std::nullopt);
  bool first = true;
  for (std::size_t i = 0; i < result.recipients.size(); ++i) {
    if (!result.recipients[i].is_positive()) continue;
    result.lmtp[i] = std::exchange(first, false) ? *result.data : read_reply(options_.data_timeout);
  }
}

void SmtpClient::quit() noexcept {
  if (connected()) {
    try {
      command("QUIT");
    } catch (const std::exception& e) {
      log::debug("smtp client {}: QUIT: {}", peer_, e.what());
    }
  }
  close();
}

void SmtpClient::close() noexcept {
  bev_.reset();
  tcp_connected_ = false;
  tls_connected_ = false;
  lines_.clear();
  replies_.clear();
}

}  // namespace wsmtp::common::smtp
