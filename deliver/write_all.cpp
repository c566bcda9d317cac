#include "write_all.h"

#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace wsmtp::deliver {

void write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "write " + path);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace wsmtp::deliver
