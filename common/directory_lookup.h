// The directory questions the router asks while expanding a recipient, as an
// interface so expansion policy is unit-tested without a database. The real
// implementation (pg/directory.h, PgDirectoryLookup) answers from PostgreSQL
// inside the router's transaction. Addresses are lookup keys (lower-case).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace wsmtp::common {

struct MailboxTarget {
  std::string address;
  std::string maildir;
  std::string transport;
};

class DirectoryLookup {
 public:
  virtual ~DirectoryLookup() = default;
  virtual bool is_local_domain(const std::string& domain) = 0;
  virtual std::optional<MailboxTarget> find_mailbox(const std::string& address) = 0;
  virtual std::vector<std::string> alias_targets(const std::string& address) = 0;
};

}  // namespace wsmtp::common
