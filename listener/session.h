// One SMTP conversation (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
// ENHANCEDSTATUSCODES, STARTTLS, AUTH, SMTPUTF8 and CHUNKING) as a pure state
// machine: lines (or, inside BDAT, raw bytes) in, reply bytes and store requests
// out. It knows no sockets, no TLS library, no SQL and no event loop, so every
// dialogue is unit-testable against a fake store; server.cpp moves the bytes,
// performs the TLS handshake it asks for, and store_worker runs the requests.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backlog.h"
#include "body_filter.h"
#include "cidr.h"
#include "config.h"
#include "deadlines.h"
#include "milter/event.h"
#include "milter/message_edit.h"
#include "smtp/reply.h"
#include "store_op.h"

namespace wsmtp::listener {

class QueueIdSource;
class Placement;
class BacklogWatch;

struct SessionContext {
  IpAddress client;         // the peer's address
  std::string received_by;  // this listener's identity (host:pid), stored with the message
  // Injected so tests need no wall clock; used for the Received: and Date: headers only.
  std::function<std::chrono::system_clock::time_point()> clock = [] { return std::chrono::system_clock::now(); };
  // Where sessions take their messages' queue ids without waiting (shared by
  // every loop; outlives the session). Null: each is asked of the store (TakeQueueId).
  QueueIdSource* queue_ids = nullptr;
  // The queue group, to name a message's shard in its log line when there are
  // several (outlives the session). Null: not named.
  const Placement* placement = nullptr;
  // Set while every queue shard is at [listener] queue_max_size (QueueWatch
  // and Placement, shared by every loop; outlives the session). Null: never full.
  const std::atomic<bool>* queue_full = nullptr;
  // The backlog totals sessions check at MAIL and RCPT (shared by every loop;
  // outlives the session). Null: no backpressure.
  const BacklogWatch* backlogs = nullptr;
  std::uint16_t client_port = 0;  // the peer's port, for the milters (0: unknown)
};

class Session {
 public:
  // RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
  static constexpr std::size_t kMaxCommandLine = 512;
  // RFC 4954 §4: an AUTH response line may be up to 12288 octets; ours (PLAIN and
  // LOGIN with names and passwords of at most 255) fit in far less.
  static constexpr std::size_t kMaxAuthLine = 1000;
  // Body bytes are handed to the store in chunks of about this size, which bounds
  // the memory a connection holds whatever the message size. A message that ends
  // within the first chunk is stored in one transaction (StoreWhole).
  static constexpr std::size_t kBodyChunkSize = 128 * 1024;
  // The largest piece of input the server passes in one on_line()/on_raw() call.
  static constexpr std::size_t kCommandPiece = 1024;
  static constexpr std::size_t kDataPiece = 16 * 1024;

  // Queues the 220 greeting. The session co-owns config, so a configuration
  // reloaded by SIGHUP applies to new sessions while this one keeps its own.
  Session(std::shared_ptr<const ListenerConfig> config, SessionContext context);

  // One line of input without its LF (a trailing CR is the CR of CRLF), with
  // complete = true; or, with complete = false, a piece of a line whose LF has not
  // arrived yet (at most max_piece() bytes; the server splits overlong lines).
  // Must not be called while waiting(), raw_remaining() > 0, wants_tls() or closing().
  void on_line(std::string_view bytes, bool complete);
  // BDAT chunk bytes (RFC 3030), at most raw_remaining() of them, no line splitting.
  void on_raw(std::string_view bytes);
  // The result of the op last returned by take_store_op(); resumes the session.
  void on_store_result(const StoreResult& result);
  // The TLS handshake the session asked for (wants_tls()) completed; cipher names
  // protocol and cipher for the Received: header. Restarts the session (RFC 3207 §4.2).
  void on_tls_started(std::string cipher);
  // The client was silent for too long: 421, abort any message, close.
  void on_timeout();
  // A deadline the client could not push back passed (deadlines.h): 421 4.4.2
  // naming it, abort any message, close. Must not be called while waiting().
  void on_deadline(Deadlines::Kind kind);
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
  // Events for the connection's milter chain (milter/chain.h), in order;
  // empties the list. Only with [listener] milters.
  std::vector<milter::Event> take_milter_events() { return std::exchange(milter_out_, {}); }
  // The verdict on the awaited event last taken; resumes the session.
  void on_milter_verdict(const milter::Verdict& verdict);
  bool has_milters() const { return !config_.milters->empty(); }
  // How long to hold back the replies just taken before sending them and reading
  // on (tarpit after errors); zero most of the time. Resets on reading.
  std::chrono::seconds take_tarpit() { return std::exchange(tarpit_, std::chrono::seconds(0)); }

  bool waiting() const { return pending_ != Pending::none; }
  // Send what take_output() returns, then close the connection.
  bool closing() const { return close_; }
  // STARTTLS was accepted: once the 220 is sent, discard every byte already
  // received (CVE-2011-0411: plaintext pipelined behind STARTTLS must not be
  // executed inside the TLS session), start the handshake and report it.
  bool wants_tls() const { return phase_ == Phase::starttls; }
  bool tls_active() const { return !tls_cipher_.empty(); }
  bool in_data() const { return phase_ == Phase::data || phase_ == Phase::bdat; }
  // A DATA or BDAT body has begun and its final reply is not given yet.
  bool message_in_progress() const { return body_started_ && !close_; }
  std::uint64_t raw_remaining() const { return phase_ == Phase::bdat ? bdat_remaining_ : 0; }
  std::size_t max_piece() const { return in_data() ? kDataPiece : kCommandPiece; }
  bool authenticated() const { return !auth_user_.empty(); }

 private:
  enum class Phase { need_helo, ready, data, bdat, auth, starttls, closed };
  enum class Pending {
    none,
    recipient,
    queue_id_data,  // TakeQueueId for DATA: 354 once the id is known
    queue_id_bdat,  // TakeQueueId for the first BDAT: its chunk is read once the id is known
    begin,
    append,
    append_last,
    commit,
    store_whole,
    verify,
    abort,
    milter  // an awaited milter event (milter_wait_ says which)
  };
  enum class DataOutcome { ok, too_big, line_too_long, loop, store_failed, header_too_big };
  enum class MilterWait { none, connect, helo, mail, rcpt, data, bdat, end_of_message };
  enum class AuthStep { none, plain, login_user, login_password };

  // session.cpp: commands and results
  void command_line(std::string_view line);
  bool other_command(const std::string& verb, std::string_view arg);
  void cmd_helo(std::string_view arg, bool extended);
  void helo_reply();
  void cmd_mail(std::string_view arg);
  void cmd_rcpt(std::string_view arg);
  bool parse_mail_params(std::string_view params, bool& smtputf8);
  void recipient_result(const StoreResult& result);
  void result_while_closing(Pending was, const StoreResult& result);
  void accepted();

  // session_auth.cpp: STARTTLS and AUTH
  void cmd_starttls(std::string_view arg);
  void cmd_auth(std::string_view arg);
  void auth_line(std::string_view line);
  void auth_plain(std::string_view base64);
  void verify(std::string username, std::string password);
  void verify_result(const StoreResult& result);
  void auth_failed_once();

  // session_data.cpp: DATA and BDAT
  void cmd_data(std::string_view arg);
  void cmd_bdat(std::string_view arg);
  bool have_queue_id(Pending pending);
  void body_may_start(bool bdat);
  void queue_id_result(Pending was, const StoreResult& result);
  void begin_data();
  void begin_bdat_chunk();
  void start_body();
  void data_piece(std::string_view bytes, bool complete);
  void body_content(std::string_view bytes);
  void body_line_end();
  bool over_size();
  void end_of_data();
  void bdat_chunk_done();
  void finish_message();
  void fail_message(const common::smtp::Reply& reply);
  void flush_chunk(bool last);
  void append_result(Pending was, const StoreResult& result);
  std::string received_header() const;
  std::string missing_headers() const;
  std::string with_protocol() const;

  // session_milter.cpp: the milters' side of each stage
  void milter_emit(milter::Event event);
  void milter_await(milter::Event event, MilterWait wait);
  milter::Macros connect_macros() const;
  milter::Macros helo_macros() const;
  milter::Macros mail_macros() const;
  milter::Macros queue_id_macros() const;
  void milter_mail(std::string_view params);
  void milter_rcpt();
  void milter_data(bool bdat);
  void milter_scan_headers();
  void milter_send_body(bool all);
  void milter_end_of_message();
  void milter_message_verdict(const milter::Verdict& verdict);
  void milter_apply(const milter::Verdict& verdict);
  void milter_store();
  bool milter_sequential() const;
  int milter_content_target() const;
  void milter_send_content(int target, std::string_view header, std::string_view body);
  void milter_replay(int target);
  void milter_catch_up();
  std::string_view milter_original_header() const;
  std::string milter_current_header() const;
  void milter_discard(std::string_view why);
  void milter_split_header();
  void milter_abort_if_in_message();
  common::smtp::Reply milter_reply(const milter::Verdict& verdict, bool content) const;

  void issue(StoreOp op, Pending pending);
  void abort_message_if_any();
  void reset_transaction();
  void shut_down_now();
  void close_with(const common::smtp::Reply& reply);

  void reply(const common::smtp::Reply& reply);
  // A reply to a client mistake: counts towards max_errors and the tarpit.
  void error(const common::smtp::Reply& reply);
  void log_rejected_recipient(std::string_view reason);
  // backlog (session.cpp): who is sending, and 451 4.7.1 if over a quota.
  SenderKind sender_kind() const;
  bool refuse_over_backlog(std::string_view command);
  std::string fair_client() const;
  common::NewMessage new_message() const;

  std::shared_ptr<const ListenerConfig> config_owner_;
  const ListenerConfig& config_;
  SessionContext context_;
  std::string client_ip_;
  bool trusted_ = false;       // in trusted_networks
  bool limit_exempt_ = false;  // in limit_exceptions: no max_errors, no tarpit
  std::string client_key_;     // limit_key(): what the client's backlog counts under

  Phase phase_ = Phase::need_helo;
  Pending pending_ = Pending::none;
  std::optional<StoreOp> op_;
  std::string output_;
  bool close_ = false;
  bool disconnected_ = false;
  bool shutdown_pending_ = false;
  int errors_ = 0;
  std::chrono::seconds tarpit_{0};
  bool discarding_line_ = false;  // inside an overlong command line
  bool command_crlf_ = true;      // the last command line ended with CRLF

  std::string helo_;
  bool esmtp_ = false;
  std::string tls_cipher_;  // non-empty once TLS is up
  std::string auth_user_;   // non-empty once authenticated
  AuthStep auth_step_ = AuthStep::none;
  std::string auth_mechanism_;  // "PLAIN" or "LOGIN", for the {auth_type} milter macro
  std::string auth_login_user_;
  int auth_failures_ = 0;

  // The mail transaction (RFC 5321 §3.3): MAIL, RCPTs, DATA or BDATs.
  bool has_mail_ = false;
  bool smtputf8_ = false;
  std::string envelope_from_;
  std::vector<std::string> recipients_;
  std::vector<std::string> backlog_keys_;  // backlog_keys() at MAIL
  bool recipient_rejected_ = false;
  std::string pending_recipient_;
  bool pending_postmaster_ = false;      // pending_recipient_ is postmaster@domain
  bool pending_our_postmaster_ = false;  // ... and the domain is our hostname

  // The body. queue_id_ names the transaction's message from the start of its
  // body (Received:, logs, 250) until the transaction ends; msg_id_ is non-zero
  // while a message exists in state 0 that we own.
  bool body_started_ = false;
  std::int64_t queue_id_ = 0;
  std::int64_t msg_id_ = 0;
  BodyFilter filter_;
  std::string chunk_;
  int seq_ = 0;
  std::uint64_t body_size_ = 0;    // bytes from the client, for max_message_size
  std::uint64_t stored_size_ = 0;  // bytes stored, Received: included
  DataOutcome outcome_ = DataOutcome::ok;
  bool at_line_start_ = true;
  bool prev_crlf_ = true;  // the previous line ended with CRLF (not a bare LF)
  std::string carry_;      // held back from a partial line: a trailing CR, or a lone leading dot
  // BDAT
  std::uint64_t bdat_remaining_ = 0;
  std::uint64_t bdat_size_ = 0;
  bool bdat_last_ = false;
  bool bdat_done_pending_ = false;                   // the chunk ended while its append was outstanding
  std::optional<common::smtp::Reply> bdat_refusal_;  // consume the chunk, then say this

  // Milters (session_milter.cpp).
  MilterWait milter_wait_ = MilterWait::none;
  std::vector<milter::Event> milter_out_;
  // Set by a refusal at connect (or a milter's default action then): every
  // later MAIL, RCPT, DATA and BDAT of the session gets it.
  std::optional<common::smtp::Reply> milter_refusal_;
  // A refusal of the last HELO/EHLO: MAIL gets it too, until a HELO is accepted.
  std::optional<common::smtp::Reply> milter_helo_refusal_;
  std::string milter_mail_params_;  // MAIL's ESMTP parameters, for the milters' MAIL
  bool milter_pending_smtputf8_ = false;
  bool milter_in_message_ = false;  // the milters saw MAIL and not yet end of message or abort
  bool milter_discard_ = false;     // a milter said discard before end of message
  bool milter_headers_sent_ = false;
  std::size_t header_end_ = 0;   // the header section is chunk_[0, header_end_) once sent
  std::size_t milter_sent_ = 0;  // chunk_ bytes before this offset went to the milters
  std::string milter_header_;    // a streamed message's header section, stored with the commit
  common::ReceiptEdits edits_;   // the milters' changes to a streamed message, for its commit
  bool finishing_ = false;       // storing the checked message: after its row, its last chunk
  // Several milters (milter_sequential): whose end of message is being asked,
  // and the changes so far, which the next one sees.
  int milter_turn_ = 0;
  bool milter_stream_all_ = false;  // the message outgrew memory: content goes to every milter at once
  std::optional<milter::HeaderSection> milter_edited_header_;
  std::optional<std::string> milter_new_body_;
  bool milter_sender_changed_ = false;
  bool milter_rcpts_changed_ = false;
};

}  // namespace wsmtp::listener
