// Post-commit wake-ups (schema/009_commit_concurrency.sql). A NOTIFY inside a
// message transaction serialises every committing transaction in the cluster
// on one lock held through its WAL flush; a program on a hot path instead
// defers the wake-up for its session and sends it after each commit, in its
// own transaction with asynchronous commit, which holds that lock only briefly.
#pragma once

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// From now on the schema trigger does not NOTIFY for transactions on conn; the
// caller must call send_wakeup() after committing work that other stages wait
// for. Session-level: a reconnected connection needs it again.
void defer_wakeups(pqxx::connection_base& conn);

// NOTIFYs channel (kRouteChannel, kDeliverChannel) in a transaction of its own
// whose commit does not wait for a WAL flush: a notification is only a hint
// (workers also poll), so losing it in a crash costs one poll interval at most.
// Must be called outside any transaction on conn.
void send_wakeup(pqxx::connection_base& conn, const char* channel);

}  // namespace wsmtp::common::pg
