// Opening PostgreSQL connections. Daemons never exit for a database outage: they
// call connect_with_backoff(), which retries with exponential backoff until the
// server answers or the daemon is asked to stop.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// Throws pqxx::broken_connection if the server cannot be reached.
std::unique_ptr<pqxx::connection> connect(const std::string& conninfo);

// Retries from 100 ms up to 10 s between attempts, logging each failure once.
// Returns nullptr only when stop becomes true.
std::unique_ptr<pqxx::connection> connect_with_backoff(const std::string& conninfo, const std::atomic<bool>& stop);

// conninfo with connect_timeout=seconds added unless the admin set one (key=value
// form only; a URI is used as given): for connections whose user must not wait
// the minutes a TCP connect to a dead host can take.
std::string with_connect_timeout(const std::string& conninfo, int seconds);

// True for the errors that mean "the connection is gone, reconnect".
bool is_connection_error(const std::exception& e);

}  // namespace wsmtp::common::pg
