// Message bodies as numbered chunks: appended while DATA arrives, read back one
// small batch at a time, so neither the listener nor the deliverer ever holds a
// whole message in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

void append_body_chunk(pqxx::transaction_base& tx, std::int64_t msg_id, int seq, std::string_view data);

// Calls sink for each chunk in order. Memory: a few chunks at a time.
void read_body(pqxx::transaction_base& tx, std::int64_t msg_id, const std::function<void(std::string_view)>& sink);

// The start of the body, enough to hold its header section: chunks are read
// until one contains the blank line that ends the headers or max_bytes are in
// (for reports, which quote the headers and never need the body).
std::string read_body_start(pqxx::transaction_base& tx, std::int64_t msg_id, std::size_t max_bytes);
// The whole stored message of each of `ids` that is a single chunk of at most
// max_bytes (most mail), by message id, in one query: a deliverer's batch then
// costs one round trip for its bodies instead of one per copy. Bigger messages
// are absent and are streamed with read_body.
std::map<std::int64_t, std::string> read_small_bodies(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids,
                                                      std::size_t max_bytes);

}  // namespace wsmtp::common::pg
