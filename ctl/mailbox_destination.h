// Where a mailbox's mail goes, per transport, as `wsmtpctl mailbox add` takes
// it: --maildir DIR, --mbox FILE or --lmtp HOST:PORT | unix:/path, checked
// here and turned into the value the router copies into each delivery's
// destination (mailboxes.maildir, schema 016). Pure: no database.
#pragma once

#include <string>

namespace wsmtp::ctl {

struct DestinationArgs {
  std::string transport = "maildir";
  std::string maildir, mbox, lmtp;
};

// The destination to store for the transport. Throws CommandError naming the
// flag and the expected form (exit 2: bad arguments).
std::string mailbox_destination(const DestinationArgs& args);

}  // namespace wsmtp::ctl
