// See body_filter.h for the policy. Header names are matched on the first bytes
// of each line only, so the filter's memory is a few bytes whatever the input.
#include "body_filter.h"

#include "address.h"

namespace wsmtp::listener {

namespace {
// Long enough for "message-id:", the longest field name we look for.
constexpr std::size_t kHeadBytes = 11;

bool starts_with_field(const std::string& head, std::string_view field) {
  return head.size() >= field.size() && common::to_lower_ascii(head.substr(0, field.size())) == field;
}
}  // namespace

void BodyFilter::reset(std::size_t max_line) { *this = BodyFilter(max_line); }

void BodyFilter::content(std::string_view bytes, std::string& out) {
  for (;;) {
    auto cr = bytes.find('\r');
    segment(bytes.substr(0, cr), out);
    if (cr == std::string_view::npos) return;
    line_end(out);  // a bare CR: stored as a line end
    bytes.remove_prefix(cr + 1);
  }
}

void BodyFilter::segment(std::string_view bytes, std::string& out) {
  if (bytes.empty()) return;
  if (in_headers_ && line_head_.size() < kHeadBytes) line_head_.append(bytes.substr(0, kHeadBytes - line_head_.size()));
  line_length_ += bytes.size();
  out.append(bytes);
}

void BodyFilter::line_end(std::string& out) {
  if (line_length_ + 2 > max_line_) line_too_long_ = true;
  if (in_headers_) {
    if (line_length_ == 0) {
      end_headers(out);
    } else if (starts_with_field(line_head_, "received:")) {
      ++received_;
    } else if (starts_with_field(line_head_, "message-id:")) {
      has_message_id_ = true;
    } else if (starts_with_field(line_head_, "date:")) {
      has_date_ = true;
    }
  }
  line_head_.clear();
  line_length_ = 0;
  out.append("\r\n");
}

void BodyFilter::end_headers(std::string& out) {
  in_headers_ = false;
  if (hook_) out.append(hook_(*this, hook_context_));
}

void BodyFilter::finish(std::string& out) {
  if (line_length_ > 0) line_end(out);
  if (in_headers_) end_headers(out);
}

}  // namespace wsmtp::listener
