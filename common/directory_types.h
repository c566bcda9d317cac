// What the directory says about a mailbox and a mailing list, as plain values:
// the listener's and wsmtpctl's queries (pg/directory.h) and the router's
// expansion (router/directory_lookup.h) all speak them.
#pragma once

#include <string>

namespace wsmtp::common {

struct MailboxTarget {
  std::string address;
  std::string maildir;
  std::string transport;
};

enum class PostingPolicy { anyone, members, moderated };

// A mailing list (schema 003): who may post, where bounces go, and the values
// of its RFC 2369/2919 headers.
struct MailingList {
  std::string address;
  std::string owner;
  std::string bounce_address;
  PostingPolicy policy = PostingPolicy::members;
  std::string list_id;      // RFC 2919 list-id, without brackets
  std::string description;  // List-Id phrase
  std::string unsubscribe;  // List-Unsubscribe value; "" -> mailto the owner
};

}  // namespace wsmtp::common
