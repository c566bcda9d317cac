// STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN (RFC 4954, RFC 4616) for the session.
// The session only decides: the server performs the handshake when wants_tls()
// says so, and password checks run on a store worker (VerifyUser), never here.
// AUTH exists only under TLS; failures count as errors (tarpit) and end the
// session after max_auth_failures. Credentials are never logged.
#include <sodium.h>

#include "ascii.h"
#include "log.h"
#include "printable.h"
#include "session.h"
#include "replies.h"

namespace wsmtp::listener {

namespace replies = common::smtp::replies;

namespace {

std::optional<std::string> decode_base64(std::string_view text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  std::size_t length = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &length, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size())
    return std::nullopt;
  out.resize(length);
  return out;
}

// base64("Username:") and base64("Password:"), the customary LOGIN prompts.
constexpr std::string_view kLoginUserPrompt = "VXNlcm5hbWU6";
constexpr std::string_view kLoginPasswordPrompt = "UGFzc3dvcmQ6";

}  // namespace

void Session::cmd_starttls(std::string_view arg) {
  if (!arg.empty()) return error(replies::syntax_error("STARTTLS"));
  if (tls_active()) return error(replies::tls_already_active());
  if (!config_.tls_enabled()) return error(replies::tls_not_available());
  reply(replies::starttls_ready());
  phase_ = Phase::starttls;
}

void Session::on_tls_started(std::string cipher) {
  if (!wants_tls()) log::fatal("TLS started without STARTTLS (server bug)");
  // RFC 3207 §4.2: forget everything learnt before, and expect a new EHLO.
  reset_transaction();
  helo_.clear();
  esmtp_ = false;
  auth_user_.clear();
  tls_cipher_ = std::move(cipher);
  phase_ = Phase::need_helo;
  log::debug("client={} TLS established: {}", client_ip_, tls_cipher_);
}

void Session::cmd_auth(std::string_view arg) {
  if (!tls_active()) return error(config_.tls_enabled() ? replies::auth_need_tls() : replies::auth_not_enabled());
  if (phase_ == Phase::need_helo) return error(replies::need_helo());
  if (authenticated()) return error(replies::auth_already_done());
  if (has_mail_) return error(replies::bad_sequence("AUTH not allowed during a mail transaction"));
  auto space = arg.find(' ');
  auto mechanism = common::to_upper_ascii(arg.substr(0, space));
  std::string_view initial = space == std::string_view::npos ? std::string_view() : arg.substr(space + 1);
  auth_mechanism_ = mechanism;
  if (mechanism == "PLAIN") {
    if (!initial.empty()) return auth_plain(initial == "=" ? std::string_view() : initial);
    auth_step_ = AuthStep::plain;
    phase_ = Phase::auth;
    return reply(replies::auth_challenge(""));
  }
  if (mechanism == "LOGIN") {
    phase_ = Phase::auth;
    if (initial.empty()) {
      auth_step_ = AuthStep::login_user;
      return reply(replies::auth_challenge(kLoginUserPrompt));
    }
    auth_step_ = AuthStep::login_user;
    return auth_line(initial);
  }
  error(replies::auth_unknown_mechanism());
}

void Session::auth_line(std::string_view line) {
  auto step = std::exchange(auth_step_, AuthStep::none);
  phase_ = Phase::ready;
  if (line == "*") return error(replies::auth_cancelled());  // RFC 4954 §4: the client gave up
  if (line.size() + 2 > kMaxAuthLine) return error(replies::line_too_long());
  if (step == AuthStep::plain) return auth_plain(line);
  auto decoded = decode_base64(line);
  if (!decoded) return error(replies::auth_bad_base64());
  if (step == AuthStep::login_user) {
    auth_login_user_ = std::move(*decoded);
    auth_step_ = AuthStep::login_password;
    phase_ = Phase::auth;
    return reply(replies::auth_challenge(kLoginPasswordPrompt));
  }
  verify(std::exchange(auth_login_user_, {}), std::move(*decoded));
}

// RFC 4616: [authzid] NUL authcid NUL passwd. Acting for someone else (an
// authzid other than the authcid) is not supported.
void Session::auth_plain(std::string_view base64) {
  auto decoded = decode_base64(base64);
  if (!decoded) return error(replies::auth_bad_base64());
  auto first = decoded->find('\0');
  auto second = first == std::string::npos ? std::string::npos : decoded->find('\0', first + 1);
  if (second == std::string::npos) return auth_failed_once();
  auto authzid = decoded->substr(0, first);
  auto authcid = decoded->substr(first + 1, second - first - 1);
  if (!authzid.empty() && authzid != authcid) return auth_failed_once();
  verify(std::move(authcid), decoded->substr(second + 1));
}

void Session::verify(std::string username, std::string password) {
  if (username.empty() || username.size() > 255 || password.empty()) return auth_failed_once();
  auth_login_user_ = username;  // kept for the log and auth_user_ on success
  issue(VerifyUser{std::move(username), std::move(password)}, Pending::verify);
}

void Session::verify_result(const StoreResult& result) {
  auto user = std::exchange(auth_login_user_, {});
  if (!result.ok) return reply(replies::auth_temporary_failure());
  if (result.auth_blocked) {
    log::info("client={} AUTH refused for user={}: too many failures from this address", client_ip_,
              common::printable(user));
    return close_with(replies::auth_blocked_for_address(config_.hostname));
  }
  if (!result.verified) {
    log::info("client={} AUTH failed for user={}", client_ip_, common::printable(user));
    return auth_failed_once();
  }
  log::info("client={} authenticated user={}", client_ip_, common::printable(user));
  auth_user_ = std::move(user);
  reply(replies::auth_ok());
}

void Session::auth_failed_once() {
  ++auth_failures_;
  error(replies::auth_failed());
  if (!close_ && auth_failures_ >= config_.max_auth_failures) {
    log::info("client={} too many AUTH failures ({}), disconnecting", client_ip_, auth_failures_);
    close_with(replies::too_many_auth_failures(config_.hostname));
  }
}

}  // namespace wsmtp::listener
