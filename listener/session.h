// One SMTP conversation (RFC 5321 with PIPELINING, SIZE, 8BITMIME and
// ENHANCEDSTATUSCODES) as a pure state machine: lines in, reply bytes and store
// requests out. It knows no sockets, no SQL and no event loop, so every dialogue is
// unit-testable against a fake store; server.cpp moves the bytes and store_worker
// runs the requests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cidr.h"
#include "config.h"
#include "smtp/reply.h"
#include "store_op.h"

namespace wsmtp::listener {

struct SessionContext {
  IpAddress client;         // the peer's address
  std::string received_by;  // this listener's identity (host:pid), stored with the message
  // Injected so tests need no wall clock; used for the Received: date only.
  std::function<std::chrono::system_clock::time_point()> clock = [] { return std::chrono::system_clock::now(); };
};

class Session {
 public:
  // RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
  static constexpr std::size_t kMaxCommandLine = 512;
  // Body bytes are handed to the store in chunks of about this size, which bounds
  // the memory a connection holds whatever the message size.
  static constexpr std::size_t kBodyChunkSize = 64 * 1024;
  // The largest piece of input the server passes in one on_line() call.
  static constexpr std::size_t kCommandPiece = 1024;
  static constexpr std::size_t kDataPiece = 16 * 1024;

  // Queues the 220 greeting. config must outlive the session.
  Session(const ListenerConfig& config, SessionContext context);

  // One line of input without its LF (a trailing CR is the CR of CRLF), with
  // complete = true; or, with complete = false, a piece of a line whose LF has not
  // arrived yet (at most max_piece() bytes; the server splits overlong lines).
  // Must not be called while waiting() or after closing().
  void on_line(std::string_view bytes, bool complete);
  // The result of the op last returned by take_store_op(); resumes the session.
  void on_store_result(const StoreResult& result);
  // The client was silent for too long: 421, abort any message, close.
  void on_timeout();
  // The server is stopping: 421 now if idle, else after the outstanding op.
  void on_shutdown();
  // The connection is gone: nothing more is sent; an unfinished message is aborted
  // (now, or once the outstanding op has returned).
  void on_disconnect();

  // Reply bytes to send, in order; empties the buffer.
  std::string take_output();
  // The next store request, if any. While it is outstanding waiting() is true and
  // the server must feed no input (pipelined commands stay buffered, in order).
  std::optional<StoreOp> take_store_op();

  bool waiting() const { return pending_ != Pending::none; }
  // Send what take_output() returns, then close the connection.
  bool closing() const { return close_; }
  bool in_data() const { return phase_ == Phase::data; }
  std::size_t max_piece() const { return in_data() ? kDataPiece : kCommandPiece; }

 private:
  enum class Phase { need_helo, ready, data, closed };
  enum class Pending { none, recipient, begin, append, append_last, commit, abort };
  enum class DataOutcome { ok, too_big, store_failed };

  void command_line(std::string_view line);
  void cmd_helo(std::string_view arg, bool extended);
  void cmd_mail(std::string_view arg);
  void cmd_rcpt(std::string_view arg);
  void cmd_data(std::string_view arg);
  bool parse_mail_params(std::string_view params);

  void data_piece(std::string_view bytes, bool complete);
  void body_bytes(std::string_view bytes);
  void end_of_data();
  void flush_chunk(bool last);
  void start_data(std::int64_t msg_id);
  std::string received_header() const;

  void recipient_result(const StoreResult& result);
  void result_while_closing(Pending was, const StoreResult& result);
  void accepted();
  void issue(StoreOp op, Pending pending);
  void abort_message_if_any();
  void reset_transaction();
  void shut_down_now();

  void reply(const common::smtp::Reply& reply);
  // A reply to a client mistake: counts towards max_errors.
  void error(const common::smtp::Reply& reply);
  void log_rejected_recipient(std::string_view reason);

  const ListenerConfig& config_;
  SessionContext context_;
  std::string client_ip_;
  bool relay_allowed_ = false;

  Phase phase_ = Phase::need_helo;
  Pending pending_ = Pending::none;
  std::optional<StoreOp> op_;
  std::string output_;
  bool close_ = false;
  bool disconnected_ = false;
  bool shutdown_pending_ = false;
  int errors_ = 0;
  bool discarding_line_ = false;  // inside an overlong command line
  bool command_crlf_ = true;      // the last command line ended with CRLF

  std::string helo_;
  bool esmtp_ = false;

  // The mail transaction (RFC 5321 §3.3): MAIL, RCPTs, DATA.
  bool has_mail_ = false;
  std::string envelope_from_;
  std::vector<std::string> recipients_;
  bool recipient_rejected_ = false;
  std::string pending_recipient_;

  // DATA. msg_id_ is non-zero while a message exists in state 0 that we own.
  std::int64_t msg_id_ = 0;
  std::string chunk_;
  int seq_ = 0;
  std::uint64_t body_size_ = 0;    // bytes from the client, for max_message_size
  std::uint64_t stored_size_ = 0;  // bytes stored, Received: included
  DataOutcome outcome_ = DataOutcome::ok;
  bool at_line_start_ = true;
  bool prev_crlf_ = true;  // the previous line ended with CRLF (not a bare LF)
  std::string carry_;      // held back from a partial line: a trailing CR, or a lone leading dot
};

}  // namespace wsmtp::listener
