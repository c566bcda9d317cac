#include "identity.h"

#include <unistd.h>

#include <fmt/format.h>

namespace wsmtp::common {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

std::string worker_identity() { return fmt::format("{}:{}", host_name(), ::getpid()); }

}  // namespace wsmtp::common
