// `wsmtpctl mailbox add --transport ...`: each transport's destination, and the
// precise complaint about a wrong one.
#include <catch2/catch.hpp>

#include "ctl/context.h"
#include "ctl/mailbox_destination.h"

using namespace wsmtp::ctl;

namespace {

DestinationArgs args(std::string transport, std::string maildir, std::string mbox, std::string lmtp) {
  return {std::move(transport), std::move(maildir), std::move(mbox), std::move(lmtp)};
}

std::string refusal(const DestinationArgs& a) {
  try {
    mailbox_destination(a);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "accepted";
}

}  // namespace

TEST_CASE("each transport takes its own destination") {
  CHECK(mailbox_destination(args("maildir", "/var/mail/a/Maildir", "", "")) == "/var/mail/a/Maildir");
  CHECK(mailbox_destination(args("mbox", "", "/var/spool/mail/a", "")) == "/var/spool/mail/a");
  CHECK(mailbox_destination(args("lmtp", "", "", "127.0.0.1:24")) == "127.0.0.1:24");
  CHECK(mailbox_destination(args("lmtp", "", "", "dovecot.internal:24")) == "dovecot.internal:24");
  // The deliverer reads a destination starting with '/' as a Unix socket.
  CHECK(mailbox_destination(args("lmtp", "", "", "unix:/run/dovecot/lmtp")) == "/run/dovecot/lmtp");
  CHECK(mailbox_destination(args("lmtp", "", "", "/run/dovecot/lmtp")) == "/run/dovecot/lmtp");
}

TEST_CASE("a wrong destination is refused naming the flag and the form") {
  CHECK(refusal(args("maildir", "", "", "")) ==
        "--transport maildir needs --maildir DIR (the Maildir's absolute path)");
  CHECK(refusal(args("maildir", "Maildir", "", "")) == "--maildir Maildir: must be an absolute path");
  CHECK(refusal(args("mbox", "", "", "")) == "--transport mbox needs --mbox FILE (the spool file's absolute path)");
  CHECK(refusal(args("mbox", "", "spool", "")) == "--mbox spool: must be an absolute path");
  CHECK(refusal(args("mbox", "/m", "/var/mail/a", "")) == "--maildir goes with --transport maildir, not mbox");
  CHECK(refusal(args("maildir", "/m", "", "h:24")) == "--lmtp goes with --transport lmtp, not maildir");
  CHECK(refusal(args("lmtp", "", "", "localhost")) == "--lmtp localhost: expected HOST:PORT or unix:/path/to/socket");
  CHECK(refusal(args("lmtp", "", "", ":24")) == "--lmtp :24: expected HOST:PORT or unix:/path/to/socket");
  CHECK(refusal(args("lmtp", "", "", "h:0")) == "--lmtp h:0: port must be 1-65535");
  CHECK(refusal(args("lmtp", "", "", "h:99999")) == "--lmtp h:99999: port must be 1-65535");
  CHECK(refusal(args("lmtp", "", "", "h:2x")) == "--lmtp h:2x: port must be 1-65535");
  CHECK(refusal(args("lmtp", "", "", "[::1]:24")) == "--lmtp [::1]:24: '[::1]' is not a host name or IPv4 address");
  CHECK(refusal(args("lmtp", "", "", "unix:run/lmtp")) == "--lmtp unix:run/lmtp: the socket must be an absolute path");
  CHECK(refusal(args("smtp", "", "", "")) == "--transport smtp: expected maildir, mbox or lmtp");
}
