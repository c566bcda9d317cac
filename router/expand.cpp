#include "expand.h"

#include <set>

#include "address.h"

namespace wsmtp::router {
namespace {

class Expander {
 public:
  Expander(common::DirectoryLookup& directory, const ExpansionLimits& limits) : dir_(directory), limits_(limits) {}

  void visit(const std::string& address, int depth, std::vector<std::string>& path) {
    if (static_cast<int>(out_.size()) >= limits_.max_results) return bounce(address, "5.3.0 expansion too large");
    auto parsed = common::parse_mailbox(address, true);
    if (!parsed) return bounce(address, "5.1.3 bad destination mailbox address syntax");
    const std::string key = parsed->lookup_key();
    bool seen_on_path = false;
    for (const auto& p : path) seen_on_path |= p == key;
    if (!seen_on_path) {
      auto targets = dir_.alias_targets(key);
      if (!targets.empty()) {
        if (depth >= limits_.max_depth) return bounce(key, "5.4.6 alias nesting too deep (possible loop)");
        path.push_back(key);
        for (const auto& t : targets) visit(t, depth + 1, path);
        path.pop_back();
        return;
      }
    }
    // An alias naming itself ("joe: joe, boss") means "deliver to joe's own
    // mailbox too", as in sendmail; any other revisit is a loop.
    if (auto mailbox = dir_.find_mailbox(key)) return add({key, mailbox->transport, mailbox->maildir, ""});
    if (seen_on_path) return bounce(key, "5.4.6 alias loop detected");
    if (dir_.is_local_domain(common::to_lower_ascii(parsed->domain)) || parsed->is_address_literal())
      return bounce(key, "5.1.1 user unknown");
    add({key, "relay", limits_.relay_pool, ""});
  }

  std::vector<FinalRecipient> take() { return std::move(out_); }

 private:
  void bounce(const std::string& address, const std::string& reason) {
    add({address, kBounceTransport, "", reason});
  }
  void add(FinalRecipient r) {
    auto key = r.address + '\0' + r.transport + '\0' + r.destination;
    if (seen_.insert(key).second) out_.push_back(std::move(r));
  }

  common::DirectoryLookup& dir_;
  const ExpansionLimits& limits_;
  std::vector<FinalRecipient> out_;
  std::set<std::string> seen_;
};

}  // namespace

std::vector<FinalRecipient> expand_recipient(common::DirectoryLookup& directory, const std::string& recipient,
                                             const ExpansionLimits& limits) {
  Expander e(directory, limits);
  std::vector<std::string> path;
  e.visit(recipient, 0, path);
  return e.take();
}

}  // namespace wsmtp::router
