// Small helpers for building SQL parameters that libpqxx 6.4 cannot express
// directly (arrays, nullable text), and for reading results.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace wsmtp::common::pg {

// "{1,2,3}" for a bigint[] parameter ($1::bigint[]).
std::string bigint_array(const std::vector<std::int64_t>& values);
// '{"a","b"}' for a text[] parameter ($1::text[]), with quotes and backslashes escaped.
std::string text_array(const std::vector<std::string>& values);
// The bytes of a bytea field. The hex form the server sends ("\\x4142...")
// is decoded through a table, without pqxx::binarystring's extra copy (bodies
// of every delivered copy pass through here); any other form goes to libpq.
std::string bytea_value(const pqxx::field& field);
// The bigint first column of every row, in ascending order (RETURNING has no order).
std::vector<std::int64_t> sorted_ids(const pqxx::result& rows);
// nullptr (SQL NULL) for nullopt.
inline const char* nullable(const std::optional<std::string>& value) { return value ? value->c_str() : nullptr; }

}  // namespace wsmtp::common::pg
