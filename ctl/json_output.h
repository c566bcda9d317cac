// --json output for every wsmtpctl command, built with nlohmann::json (RFC 8259).
// Queue data is bytes, not text: a header, a sender or an error may hold bytes
// that are not UTF-8 (8-bit mail without a charset label). JSON strings must be
// Unicode, so such bytes are written as U+FFFD, and where the exact bytes matter
// (the header section of `show`) a base64 copy travels beside the text.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace wsmtp::ctl {

using Json = nlohmann::json;

// Prints j on one line to stdout. Strings that are not valid UTF-8 have each
// bad byte replaced by U+FFFD, so the output is always valid JSON.
void print_json(const Json& j);

// True if text is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates
// or code points above U+10FFFF).
bool is_utf8(std::string_view text);

// RFC 4648 §4 base64 with padding.
std::string base64(std::string_view bytes);

// Sets object[key] = text and, when text is not valid UTF-8, also
// object[key + "_base64"] = the exact bytes, so nothing is lost.
void put_bytes(Json& object, const std::string& key, std::string_view text);

}  // namespace wsmtp::ctl
