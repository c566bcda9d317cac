// The one RFC 5322 date writer (common/mail/date.h), behind Date:, Received:
// and the DSN's dates.
#include "mail/date.h"

#include <catch2/catch.hpp>

using wsmtp::common::mail::rfc5322_date;

TEST_CASE("rfc5322_date writes RFC 5322 §3.3 date-times in UTC") {
  CHECK(rfc5322_date(0) == "Thu, 01 Jan 1970 00:00:00 +0000");
  CHECK(rfc5322_date(1700000000) == "Tue, 14 Nov 2023 22:13:20 +0000");
  CHECK(rfc5322_date(951782400) == "Tue, 29 Feb 2000 00:00:00 +0000");  // leap day
  CHECK(rfc5322_date(1798761599) == "Thu, 31 Dec 2026 23:59:59 +0000");
  CHECK(rfc5322_date(4102444800) == "Fri, 01 Jan 2100 00:00:00 +0000");
}
