// SIGTERM/SIGINT -> a stop flag that daemon loops poll between units of work, so
// a worker finishes (or cleanly abandons) the message in hand before exiting.
#pragma once

#include <atomic>

namespace wsmtp::common {

// Installs handlers for SIGTERM and SIGINT (and ignores SIGPIPE). Returns the flag
// they set; it lives for the whole process.
const std::atomic<bool>& install_stop_signals();

}  // namespace wsmtp::common
