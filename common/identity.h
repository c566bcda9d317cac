// Who holds a lease: "hostname:pid", written into the message row so an operator
// sees which worker on which host is working on a message.
#pragma once

#include <string>

namespace wsmtp::common {

std::string worker_identity();
std::string host_name();

}  // namespace wsmtp::common
