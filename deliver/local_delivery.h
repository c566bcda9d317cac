// What the local transports (Maildir, mbox) share: the copy a recipient's
// mailbox receives (trace headers, list headers, the stored message with LF
// line ends), and the walk over their jobs that turns a failed copy into a
// deferral. Knows no mailbox format.
#pragma once

#include <functional>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

#include "config.h"
#include "pg/claim_types.h"
#include "pg/transitions.h"
#include "transport.h"

namespace wsmtp::deliver {

// Streams one recipient's local copy into sink. Throws pqxx errors reading the body.
void produce_local_copy(pqxx::connection& conn, const common::pg::DeliveryClaim& claim,
                        const common::pg::DeliveryTask& task, const std::function<void(std::string_view)>& sink);

using LocalCopy =
    std::function<common::pg::DeliveryResult(const common::pg::DeliveryClaim&, const common::pg::DeliveryTask&)>;

// True for a failed copy that says nothing about the message: the mailbox's
// directory or file system refuses every copy (permissions, read-only, I/O
// error, disk or file-system quota full). A mailbox over its own quota is a
// result, never an exception, so it is not among them.
bool fails_destination(const std::exception& e);

// Runs copy() for each task of the jobs may_start admits, in order; one result
// per task. A copy that throws is deferred with the next retry delay (disk
// full, permissions, lock timeouts: an admin can fix them, and the message
// must not bounce meanwhile); a lost database connection is rethrown.
std::vector<common::pg::DeliveryResult> run_local_jobs(const DeliverConfig& config,
                                                       const std::vector<DeliveryJob>& jobs, const MayStart& may_start,
                                                       const LocalCopy& copy);

}  // namespace wsmtp::deliver
