// Writing a whole buffer to a file descriptor, for the agents that write
// files (Maildir copies, mbox spools and their locks, maildirsize).
#pragma once
#include <string>
#include <string_view>

namespace wsmtp::deliver {

// Writes every byte, retrying short writes and EINTR. Throws std::system_error
// naming `path` on any other error.
void write_all(int fd, std::string_view bytes, const std::string& path);

}  // namespace wsmtp::deliver
