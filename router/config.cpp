#include "config.h"

namespace wsmtp::router {

RouterConfig read_router_config(const common::ConfigFile& file) {
  common::SectionReader s(file, "router");
  RouterConfig c;
  c.batch_size = static_cast<int>(s.get_int("batch_size", c.batch_size, 1, 1000));
  c.max_alias_depth = static_cast<int>(s.get_int("max_alias_depth", c.max_alias_depth, 1, 100));
  c.max_expansion = static_cast<int>(s.get_int("max_expansion", c.max_expansion, 1, 1000000));
  c.relay_pool = s.get_string("relay_pool", c.relay_pool);
  if (c.relay_pool.empty()) s.fail("relay_pool", "must not be empty");
  s.finish();
  return c;
}

}  // namespace wsmtp::router
