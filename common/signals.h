// SIGTERM/SIGINT -> a stop flag that daemon loops poll between units of work, so
// a worker finishes (or cleanly abandons) the message in hand before exiting.
// SIGHUP (reload) sets the same flag plus a reload request: the daemon stops its
// loop gracefully, validates the configuration file again and, if it is good,
// re-executes itself with it (same PID, so systemd keeps tracking it); a bad
// file is logged and the daemon carries on with the configuration it has.
#pragma once

#include <atomic>
#include <functional>

namespace wsmtp::common {

// Installs handlers for SIGTERM, SIGINT and SIGHUP (and ignores SIGPIPE).
// Returns the stop flag; it lives for the whole process.
const std::atomic<bool>& install_stop_signals();

// Call when the daemon's loop has returned. If the stop was a SIGHUP: runs
// validate (which throws ConfigError for a bad file); on success re-executes the
// program with argv and does not return; on failure logs why, clears the stop
// flag and returns true (run the loop again with the old configuration).
// Returns false for a real stop (SIGTERM/SIGINT).
bool handle_reload(char** argv, const std::function<void()>& validate);

}  // namespace wsmtp::common
