// BodyFilter: one line-ending convention in the stored body, the line limit,
// and the header facts (Received: hops, Message-ID:, Date:) whatever the pieces.
#include <catch2/catch.hpp>

#include <string>

#include "body_filter.h"

namespace wsmtp::listener {

namespace {
// Feeds text split at every LF (like DATA after dot-handling), pieces of `piece` bytes.
std::string run(BodyFilter& f, const std::string& text, std::size_t piece) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto lf = text.find('\n', pos);
    auto end = lf == std::string::npos ? text.size() : lf;
    std::string line = text.substr(pos, end - pos);
    if (lf != std::string::npos && !line.empty() && line.back() == '\r') line.pop_back();
    for (std::size_t i = 0; i < line.size(); i += piece) f.content(std::string_view(line).substr(i, piece), out);
    if (lf != std::string::npos) f.line_end(out);
    pos = end + 1;
  }
  f.finish(out);
  return out;
}
}  // namespace

TEST_CASE("bare CR and LF become CRLF; an unterminated last line is terminated", "[body]") {
  auto piece = GENERATE(1u, 2u, 7u, 1000u);
  BodyFilter f(1000);
  CHECK(run(f, "a\rb\nc\r\nd", piece) == "a\r\nb\r\nc\r\nd\r\n");
}

TEST_CASE("header facts and the end-of-headers hook", "[body]") {
  auto piece = GENERATE(1u, 3u, 1000u);
  BodyFilter f(1000);
  f.on_end_of_headers(
      [](const BodyFilter& b, void*) { return std::string(b.has_message_id() ? "" : "Message-ID: <new@x>\r\n"); },
      nullptr);
  auto out = run(f, "Received: a\r\nRECEIVED: b\r\nDate: x\r\n\r\nReceived: body\r\n", piece);
  CHECK(out == "Received: a\r\nRECEIVED: b\r\nDate: x\r\nMessage-ID: <new@x>\r\n\r\nReceived: body\r\n");
  CHECK(f.received_headers() == 2);
  CHECK(f.has_date());
  CHECK_FALSE(f.has_message_id());
  CHECK_FALSE(f.in_headers());
}

TEST_CASE("line limit counts the CRLF", "[body]") {
  BodyFilter f(10);
  std::string out;
  f.content("12345678", out);
  f.line_end(out);
  CHECK_FALSE(f.line_too_long());
  f.content("123456789", out);
  f.line_end(out);
  CHECK(f.line_too_long());
}

}  // namespace wsmtp::listener
