// The SMTP client used by wdeliver to hand mail to relays (RFC 5321): one
// connection on its own libevent base, EHLO with HELO fallback, PIPELINING
// (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152) and STARTTLS (RFC 3207,
// opportunistic or required with certificate and host name verification).
// Network I/O runs in libevent callbacks; each public call drives the loop until
// its reply arrives, so the caller (which reads bodies from PostgreSQL) never
// does database work inside a callback. Knows nothing of queues or pools.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "handles.h"
#include "smtp/reply.h"

namespace wsmtp::common::smtp {

enum class TlsPolicy { none, opportunistic, required };

struct ClientOptions {
  std::string helo_name;
  std::chrono::seconds connect_timeout{30};
  std::chrono::seconds command_timeout{300};  // RFC 5321 §4.5.3.2: 5 minutes per command
  std::chrono::seconds data_timeout{600};     // §4.5.3.2: 10 minutes for the final dot
  TlsPolicy tls = TlsPolicy::opportunistic;
  std::string ca_file;  // roots for TlsPolicy::required; empty: the system's
  // LMTP (RFC 2033): LHLO instead of EHLO, and after the final dot one reply
  // per accepted recipient instead of one for the transaction.
  bool lmtp = false;
  // Called in the caller's thread whenever the conversation moves on (a reply
  // arrived, queued output was written): a worker's lease renewal runs only
  // while its work shows progress (common/pg/lease_keeper.h).
  std::function<void()> on_progress;
};

struct ServerExtensions {
  bool esmtp = false;
  bool pipelining = false;
  bool eightbitmime = false;
  bool starttls = false;
  bool smtputf8 = false;         // SMTPUTF8 (RFC 6531)
  bool size = false;             // SIZE (RFC 1870) announced, with or without a limit
  std::uint64_t size_limit = 0;  // 0: no fixed limit announced
  bool tls_active = false;
};

// The connection failed (refused, timed out, dropped, TLS handshake or
// verification failed): nothing more can be sent on it.
class ClientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Envelope {
  std::string from;  // "" for <>
  std::vector<std::string> recipients;
  std::uint64_t size = 0;     // announced with SIZE= when the server supports it
  bool declare_8bit = false;  // BODY=8BITMIME
};

// What an EHLO (or LHLO) reply announces.
ServerExtensions parse_ehlo(const Reply& reply);
// The MAIL command for envelope to a server announcing ext: SIZE= whenever the
// server takes the SIZE extension (its limit, if any, is its to enforce),
// BODY=8BITMIME when the message declares 8-bit content and the server takes it,
// SMTPUTF8 when an address of the envelope is not ASCII and the server takes it.
std::string mail_command(const Envelope& envelope, const ServerExtensions& ext);
// True when the sender or a recipient is a UTF-8 address (RFC 6531), which only
// a server announcing SMTPUTF8 may be given.
bool needs_smtputf8(const Envelope& envelope);

struct TransactionResult {
  Reply mail;
  std::vector<Reply> recipients;           // one per envelope recipient, in order
  std::optional<Reply> data;               // the refusal of DATA, or the reply to the final dot
  std::vector<std::optional<Reply>> lmtp;  // LMTP: the final reply per recipient
  // The reply that decides recipient i: MAIL's refusal, else its RCPT refusal,
  // else its LMTP reply, else the data reply.
  const Reply& outcome(std::size_t i) const;
};

using ChunkSink = std::function<void(std::string_view)>;

class SmtpClient {
 public:
  explicit SmtpClient(ClientOptions options);
  ~SmtpClient();
  SmtpClient(const SmtpClient&) = delete;
  SmtpClient& operator=(const SmtpClient&) = delete;

  // Connects to host:port (or to the Unix socket `host` when it starts with
  // '/', port ignored) and greets (220, EHLO or HELO, STARTTLS per policy and
  // EHLO again). Returns the server's refusal (a non-2xx greeting or EHLO reply,
  // or no STARTTLS where TLS is required) after closing; nullopt when ready.
  // Throws ClientError if the connection failed.
  std::optional<Reply> open(const std::string& host, int port);

  const ServerExtensions& extensions() const { return ext_; }

  // One mail transaction. `produce` streams the message (stored form, any line
  // ends) into the sink it is given; it is called outside libevent callbacks.
  // After a failed transaction the connection is reset (RSET) for the next one.
  // Throws ClientError if the connection broke; what produce throws propagates
  // and leaves the connection unusable.
  TransactionResult send(const Envelope& envelope, const std::function<void(const ChunkSink&)>& produce);

  // NOOP on a kept connection: false (and closed) if the server went away
  // while it was idle. Never throws.
  bool alive() noexcept;

  // QUIT and close; never throws.
  void quit() noexcept;
  bool connected() const { return bev_ != nullptr && !failed_; }

 private:
  static void on_read(bufferevent* bev, void* self) noexcept;
  static void on_write(bufferevent* bev, void* self) noexcept;
  static void on_event(bufferevent* bev, short what, void* self) noexcept;
  void read_lines();
  void handle_event(short what);

  bool try_connect(const sockaddr* address, socklen_t length);
  void connect(const std::string& host, int port);
  void read_lmtp_replies(TransactionResult& result);
  TransactionResult send_without_smtputf8(const Envelope& envelope,
                                          const std::function<void(const ChunkSink&)>& produce);
  void start_tls(const std::string& host);
  std::optional<Reply> greet(const std::string& host);
  Reply ehlo();
  void write(std::string_view bytes);
  void drain_output(std::size_t below, std::chrono::seconds timeout);
  Reply read_reply(std::chrono::seconds timeout);
  Reply command(const std::string& line);
  void transmit_body(const std::function<void(const ChunkSink&)>& produce);
  void close() noexcept;
  [[noreturn]] void broken(const std::string& why);

  ClientOptions options_;
  EventBasePtr base_;
  BufferEventPtr bev_;
  SslCtxPtr tls_ctx_;
  ServerExtensions ext_;
  std::string peer_;
  std::vector<std::string> lines_;  // the reply being read
  std::deque<Reply> replies_;       // complete replies not yet consumed
  bool failed_ = false;
  std::string failure_;
  bool tls_connected_ = false;
  bool tcp_connected_ = false;
};

}  // namespace wsmtp::common::smtp
