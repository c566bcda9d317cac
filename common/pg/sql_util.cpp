#include "pg/sql_util.h"

#include <algorithm>
#include <array>
#include <stdexcept>

namespace wsmtp::common::pg {

std::string bigint_array(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(values[i]);
  }
  return out + "}";
}

std::string text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char ch : values[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

namespace {

constexpr std::array<std::int8_t, 256> make_hex_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<std::int8_t>(i);
  for (int i = 0; i < 6; ++i) {
    t['a' + i] = static_cast<std::int8_t>(10 + i);
    t['A' + i] = static_cast<std::int8_t>(10 + i);
  }
  return t;
}
constexpr auto kHex = make_hex_table();

}  // namespace

std::string bytea_value(const pqxx::field& field) {
  const char* text = field.c_str();
  const std::size_t n = field.size();
  if (n < 2 || text[0] != '\\' || text[1] != 'x') {
    pqxx::binarystring bytes(field);
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  if ((n - 2) % 2 != 0) throw std::runtime_error("malformed bytea value from the server (odd hex length)");
  std::string out((n - 2) / 2, '\0');
  const auto* in = reinterpret_cast<const unsigned char*>(text + 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = kHex[in[2 * i]];
    const int lo = kHex[in[2 * i + 1]];
    if ((hi | lo) < 0) throw std::runtime_error("malformed bytea value from the server (not hex)");
    out[i] = static_cast<char>((hi << 4) | lo);
  }
  return out;
}

std::vector<std::int64_t> sorted_ids(const pqxx::result& rows) {
  std::vector<std::int64_t> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(r[0].as<std::int64_t>());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace wsmtp::common::pg
