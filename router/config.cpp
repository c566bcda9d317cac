#include "config.h"

#include <fmt/format.h>

#include "address.h"
#include "identity.h"

namespace wsmtp::router {

RouterConfig read_router_config(const common::ConfigFile& file) {
  using namespace std::chrono_literals;
  common::SectionReader s(file, "router");
  RouterConfig c;
  c.batch_size = static_cast<int>(s.get_int("batch_size", c.batch_size, 1, 1000));
  c.max_alias_depth = static_cast<int>(s.get_int("max_alias_depth", c.max_alias_depth, 1, 100));
  c.max_expansion = static_cast<int>(s.get_int("max_expansion", c.max_expansion, 1, 1000000));
  c.max_list_members = s.get_int("max_list_members", c.max_list_members, 1, 100000000);
  c.relay_pool = s.get_string("relay_pool", c.relay_pool);
  if (c.relay_pool.empty()) s.fail("relay_pool", "must not be empty");
  c.max_routing_failures = static_cast<int>(s.get_int("max_routing_failures", c.max_routing_failures, 1, 100));
  c.hostname = s.get_string("hostname", common::host_name());
  if (c.hostname.empty() || c.hostname.find_first_of(" \t\r\n<>@") != std::string::npos)
    s.fail("hostname", "must be a host name");
  // A full address (no bare "postmaster": that is what it routes).
  auto postmaster = s.get_string("postmaster", "");
  if (!postmaster.empty()) {
    auto parsed = common::parse_mailbox(postmaster, /*allow_utf8=*/true);
    if (!parsed)
      s.fail("postmaster", fmt::format("expected a mail address such as hostmaster@example.org, got '{}'", postmaster));
    c.postmaster = parsed->lookup_key();
  }
  c.scaling = common::read_worker_scaling(s);
  s.finish();
  return c;
}

}  // namespace wsmtp::router
