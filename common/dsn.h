// Delivery Status Notifications (RFC 3464): composes the multipart/report a
// sender gets for a message whose deliveries failed (or are delayed) — a
// human-readable part, the machine-readable message/delivery-status part with one
// block per recipient, and the original headers as text/rfc822-headers. Pure text
// in, wire-form (CRLF) text out; knows nothing of the queue or the database.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace wsmtp::common::dsn {

enum class Action { failed, delayed };

struct RecipientReport {
  std::string final_recipient;
  std::string original_recipient;  // empty: same as final, field omitted
  std::string detail;              // "550 5.1.1 text" (remote reply), "5.2.2 text" or free text
  std::time_t last_attempt = 0;    // 0: never attempted (e.g. refused by the router)
};

struct Report {
  Action action = Action::failed;
  std::string reporting_mta;  // our host name
  std::string recipient;      // the original envelope sender; never empty (no DSN to <>)
  std::int64_t msg_id = 0;    // the original message, for the Message-ID and the text
  std::time_t arrival = 0;
  std::time_t now = 0;
  std::vector<RecipientReport> recipients;
  std::string original_headers;  // the original header section, any line ends
};

// "5.1.1" from a detail string: the enhanced code after a reply code, or at the
// start; otherwise the class default (5.0.0 failed, 4.0.0 delayed).
std::string status_of(std::string_view detail, Action action);

// The complete message (headers and body), CRLF line ends, 7-bit.
// The MIME boundary is random (random_boundary) and never occurs in any part:
// one that does is drawn again, so no part can end the report early or forge
// a part of its own. make_boundary replaces the random source (tests).
std::string compose(const Report& report);
std::string compose(const Report& report, const std::function<std::string()>& make_boundary);

// "=_" and 32 hex digits from the CSPRNG: unguessable by whoever wrote the
// original message. Aborts if the CSPRNG fails (a broken install).
std::string random_boundary();

// The header section of a message: everything up to the first empty line,
// capped at max_bytes (cut at a line end), without the empty line.
std::string header_section(std::string_view message, std::size_t max_bytes = 64 * 1024);

}  // namespace wsmtp::common::dsn
