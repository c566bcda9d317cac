// The date-time of RFC 5322 §3.3 as we write it, in UTC: the one writer behind
// Date:, Received: and the DSN's Arrival-Date/Last-Attempt-Date. Names of days and
// months are spelled out here, so the process locale cannot change them. Pure: no I/O.
#pragma once

#include <ctime>
#include <string>

namespace wsmtp::common::mail {

// "Sun, 22 Nov 2026 02:18:23 +0000" for t (seconds since the epoch), in UTC.
std::string rfc5322_date(std::time_t t);

}  // namespace wsmtp::common::mail
