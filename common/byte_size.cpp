// The digits are read with std::from_chars, which reports overflow; the unit's
// multiplication is checked against kMaxByteSize before it happens.
#include "byte_size.h"

#include <charconv>
#include <string_view>

#include "ascii.h"

namespace wsmtp::common {
namespace {

std::optional<std::uint64_t> unit_multiplier(std::string_view unit) {
  struct Unit {
    std::string_view name;
    unsigned shift;
  };
  static constexpr Unit kUnits[] = {{"", 0},     {"b", 0},   {"k", 10},   {"kb", 10}, {"kib", 10},
                                    {"m", 20},   {"mb", 20}, {"mib", 20}, {"g", 30},  {"gb", 30},
                                    {"gib", 30}, {"t", 40},  {"tb", 40},  {"tib", 40}};
  for (const auto& [name, shift] : kUnits)
    if (iequals(unit, name)) return std::uint64_t{1} << shift;
  return std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  auto multiplier = unit_multiplier(text.substr(digits));
  if (!multiplier) return std::nullopt;
  std::uint64_t number = 0;
  auto r = std::from_chars(text.data(), text.data() + digits, number);
  if (r.ec != std::errc() || number > kMaxByteSize / *multiplier) return std::nullopt;
  return number * *multiplier;
}

}  // namespace wsmtp::common
