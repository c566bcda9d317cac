// How the deliverer asks the directory (relay pools, mailbox quotas, the
// over-quota marks) from a worker on one queue shard. In the one-server layout
// the question goes to the shard's own connection and fails as a shard failure
// always did. With a directory of its own, a failure there is not the shard's:
// it must neither abandon the batch (a broken_connection would) nor lose mail,
// so it becomes DirectoryUnavailable, which the transports turn into a
// temporary failure of the deliveries that needed the answer.
#pragma once

#include <stdexcept>
#include <utility>

#include <pqxx/pqxx>

#include "pg/connection.h"
#include "pg/directory_link.h"

namespace wsmtp::deliver {

// The directory could not answer (unreachable, or a statement failed there).
class DirectoryUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs ask(connection) on the directory: the shard's connection when
// link.shared() (exceptions pass unchanged), else the link's own, where any
// pqxx failure is rethrown as DirectoryUnavailable and a broken connection is
// dropped so the next question reconnects. Returns what ask returns.
template <class Ask>
decltype(auto) ask_directory(common::pg::DirectoryLink& link, pqxx::connection& shard, Ask&& ask) {
  if (link.shared()) return std::forward<Ask>(ask)(shard);
  try {
    return std::forward<Ask>(ask)(link.connection(shard));
  } catch (const pqxx::failure& e) {
    if (common::pg::is_connection_error(e)) link.reset();
    throw DirectoryUnavailable(std::string("directory: ") + e.what());
  }
}

}  // namespace wsmtp::deliver
