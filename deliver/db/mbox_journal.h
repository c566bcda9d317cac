// The mbox append journal (schema 008, deliveries.spool_offset): where in the
// spool a delivery's latest append started, stored before the append begins,
// so a retry after a crash finds its own copy instead of appending a second
// (deliver/mbox.h, MboxCopyId). Committed at once, on its own.
#pragma once

#include <cstdint>
#include <optional>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// The recorded offset of a delivery's latest append, if any.
std::optional<std::int64_t> load_spool_offset(pqxx::connection& conn, std::int64_t delivery_id);

// Records it durably (its own committed transaction) before the append starts.
// Throws pqxx errors: the caller must not append then.
void save_spool_offset(pqxx::connection& conn, std::int64_t delivery_id, std::int64_t offset);

}  // namespace wsmtp::common::pg
