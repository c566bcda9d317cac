// libFuzzer target for the RFC 5321 path parser (common/address.cpp): any bytes
// must parse or be refused without a crash, and whatever parses must come back
// the same when its canonical form is parsed again.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "address.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool utf8 : {false, true}) {
    auto path = wsmtp::common::parse_path(text, /*allow_null=*/true, utf8);
    if (path.error == wsmtp::common::PathError::none && !path.is_null) {
      const auto& a = path.address;
      if (a.local.size() > wsmtp::common::kMaxLocalPart || a.domain.size() > wsmtp::common::kMaxDomain) std::abort();
      auto again = wsmtp::common::parse_path("<" + a.str() + ">", false, utf8);
      if (again.error != wsmtp::common::PathError::none || again.address.str() != a.str()) std::abort();
      if (again.address.lookup_key() != a.lookup_key()) std::abort();
      if (!wsmtp::common::parse_mailbox(a.str(), utf8)) std::abort();
    }
    wsmtp::common::is_valid_domain(text, utf8);
  }
  return 0;
}
