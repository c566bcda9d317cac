// Byte counts as people write them, in the configuration file ("max_message_size
// = 50M") and on wsmtpctl's command line ("mailbox quota a@b 2G"): one syntax for
// both, so a value that works in one works in the other. Pure: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace wsmtp::common {

// Decimal digits, then an optional binary unit in any case: b; k, kb, kib (2^10);
// m, mb, mib (2^20); g, gb, gib (2^30); t, tb, tib (2^40). "512k", "50M", "1G",
// "1048576". No sign, spaces or fractions. Returns the byte count, or nullopt if
// the text is malformed or the count exceeds kMaxByteSize. Zero is accepted:
// callers apply their own bounds.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);

// The largest count parse_byte_size returns (8 EiB - 1: fits a PostgreSQL bigint).
inline constexpr std::uint64_t kMaxByteSize = (std::uint64_t{1} << 63) - 1;

}  // namespace wsmtp::common
