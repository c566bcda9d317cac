// Untrusted text (a client's AUTH user name, a header a stranger wrote, a
// remote server's reply) made safe for a log line, a terminal or a reply we
// send: nothing in it can start a new log line, move a cursor or repaint a
// screen. Pure; knows nothing about where the text came from.
#pragma once

#include <string>
#include <string_view>

namespace wsmtp::common {

// text with every control character (C0, DEL, and the C1 range U+0080-U+009F
// that some terminals obey as CSI/OSC) and every byte that is not part of valid
// UTF-8 written as \xNN, and a backslash doubled so an escape cannot be
// forged. Printable ASCII and valid UTF-8 pass unchanged. Never throws but for
// std::bad_alloc.
std::string printable(std::string_view text);

}  // namespace wsmtp::common
