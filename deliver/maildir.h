// Maildir delivery (https://cr.yp.to/proto/maildir.html): write into tmp/, fsync,
// rename into new/, fsync new/. A crash never leaves a partial file in new/.
// Names are derived from the delivery row, so a retried delivery (after a crash
// between the rename and the database commit) finds its file and does not write
// a second copy.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace wsmtp::deliver {

// "<received epoch>.W<msg>_<delivery>.<host>" with '/' and ':' in host escaped
// as the Maildir convention asks.
std::string maildir_unique_name(std::int64_t received_epoch, std::int64_t msg_id, std::int64_t delivery_id,
                                std::string_view host);

enum class MaildirOutcome { written, already_present };

using ByteSink = std::function<void(std::string_view)>;

// Creates maildir/{tmp,new,cur} if missing, then streams the message produced by
// `produce` (which calls the sink it is given) into it. Throws std::system_error
// (or whatever produce throws); a failed attempt removes its tmp file.
MaildirOutcome deliver_to_maildir(const std::string& maildir, const std::string& unique_name,
                                  const std::function<void(const ByteSink&)>& produce);

}  // namespace wsmtp::deliver
