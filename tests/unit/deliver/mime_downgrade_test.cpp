// The 8-bit to 7-bit downgrade (deliver/mime_downgrade.h): converted parts
// decode back to the original bytes, untouched parts stay byte for byte, the
// planned size is the produced size, 8-bit headers are refused, and malformed
// or hostile MIME (no boundary, unterminated parts, deep nesting, huge part
// counts, endless lines) neither crashes nor does unbounded work.
#include <catch2/catch.hpp>

#include <random>

#include "deliver/mime_downgrade.h"

using namespace wsmtp::common::mail;

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A strict quoted-printable decoder (RFC 2045 §6.7) for checking round trips.
std::string qp_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out += in[i];
      continue;
    }
    if (in.substr(i + 1, 2) == "\r\n") {
      i += 2;
      continue;
    }
    REQUIRE(i + 2 < in.size());
    int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
    REQUIRE(hi >= 0);
    REQUIRE(lo >= 0);
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

bool all_7bit(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

// The longest line, without its CRLF.
std::size_t longest_line(std::string_view s) {
  std::size_t longest = 0, start = 0;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n') {
      longest = std::max(longest, i - start - (i > start && s[i - 1] == '\r' ? 1 : 0));
      start = i + 1;
    }
  return std::max(longest, s.size() - start);
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

std::string between(const std::string& s, const std::string& from, const std::string& to) {
  auto a = s.find(from);
  REQUIRE(a != std::string::npos);
  a += from.size();
  auto b = s.find(to, a);
  REQUIRE(b != std::string::npos);
  return s.substr(a, b - a);
}

std::string convert(std::string_view message, DowngradePlan* plan_out = nullptr, const DowngradeLimits& limits = {}) {
  std::string out;
  auto plan = downgrade_to_7bit(message, out, limits);
  REQUIRE_FALSE(plan.unconvertible);
  CHECK(plan.converted_size == out.size());
  CHECK(all_7bit(out));
  if (plan_out) *plan_out = plan;
  return out;
}

const std::string kUtf8 =
    "Gr\xC3\xBC\xC3\x9F"
    "e aus K\xC3\xB6ln \xE2\x80\x94 \xC2\xBD \xE2\x82\xAC";

}  // namespace

TEST_CASE("a non-MIME 8-bit message gets MIME headers and a quoted-printable body that decodes back") {
  std::string body = kUtf8 + "\r\nsecond line = with equals \r\n.dot line\r\n";
  std::string message = "From: a@x.org\r\nSubject: plain\r\n\r\n" + body;
  DowngradePlan plan;
  auto out = convert(message, &plan);
  CHECK(plan.has_8bit);
  CHECK(plan.convert == std::vector<std::size_t>{0});
  auto head = out.substr(0, out.find("\r\n\r\n") + 2);
  CHECK(head ==
        "From: a@x.org\r\nSubject: plain\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n");
  CHECK(qp_decode(out.substr(out.find("\r\n\r\n") + 4)) == body);
}

TEST_CASE("the Content-Transfer-Encoding field is replaced in place, other fields stay as written") {
  std::string message =
      "MIME-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\nX-Other: keep\r\n\r\n" +
      kUtf8 + "\r\n";
  auto out = convert(message);
  CHECK(out.substr(0, out.find("\r\n\r\n")) ==
        "MIME-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\nX-Other: keep");
  CHECK(qp_decode(out.substr(out.find("\r\n\r\n") + 4)) == kUtf8 + "\r\n");
}

TEST_CASE("a 7-bit message needs nothing and passes through unchanged") {
  std::string message = "Subject: hi\r\nContent-Transfer-Encoding: 7bit\r\n\r\nplain = text\r\n";
  DowngradePlan plan;
  auto out = convert(message, &plan);
  CHECK_FALSE(plan.has_8bit);
  CHECK(plan.convert.empty());
  CHECK(out == message);
}

TEST_CASE("multipart: only 8-bit leaves are converted; 7-bit and base64 parts stay byte for byte") {
  std::string seven = "Content-Type: text/plain\r\n\r\nascii only\r\n";
  std::string b64 = "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n";
  std::string eight = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + kUtf8;
  std::string message =
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1 x\"\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\npreamble\r\n--b1 x\r\n" +
      seven + "--b1 x\r\n" + b64 + "--b1 x\r\n" + eight + "\r\n--b1 x--\r\nepilogue\r\n";
  DowngradePlan plan;
  auto out = convert(message, &plan);
  CHECK(plan.convert == std::vector<std::size_t>{3});
  CHECK(out.find("Content-Transfer-Encoding: 7bit\r\n\r\npreamble") != std::string::npos);  // composite relabelled
  CHECK(out.find("--b1 x\r\n" + seven + "--b1 x\r\n" + b64 + "--b1 x\r\n") != std::string::npos);
  auto part = between(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n", "\r\n--b1 x--");
  CHECK(qp_decode(part) == kUtf8);
  CHECK(ends_with(out, "\r\n--b1 x--\r\nepilogue\r\n"));
}

TEST_CASE("nested multiparts and an encapsulated message are walked") {
  std::string inner_message = "Subject: inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + kUtf8 + "\r\n";
  std::string message =
      "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
      "--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
      "--inner\r\nContent-Type: text/plain\r\n\r\n" +
      kUtf8 +
      "\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>ok</p>\r\n"
      "--inner--\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\n" +
      inner_message + "--outer--\r\n";
  DowngradePlan plan;
  auto out = convert(message, &plan);
  // 0 top, 1 alternative, 2 text, 3 html, 4 message/rfc822, 5 its entity
  CHECK(plan.convert == std::vector<std::size_t>{2, 5});
  CHECK(out.find("<p>ok</p>") != std::string::npos);
  CHECK(out.find("Subject: inner\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\n") != std::string::npos);
  CHECK(qp_decode(between(out, "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
                          "\r\n--inner\r\n")) == kUtf8);
}

TEST_CASE("8-bit header fields cannot be converted and say why") {
  std::string out;
  auto plan = downgrade_to_7bit("Subject: " + kUtf8 + "\r\n\r\nbody\r\n", out);
  CHECK(plan.has_8bit);
  CHECK(plan.unconvertible);
  CHECK(plan.problem.find("SMTPUTF8") != std::string::npos);
  CHECK(out.empty());
  auto part = downgrade_to_7bit(
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: attachment; filename=\"" + kUtf8 +
          "\"\r\n\r\nx\r\n--b--\r\n",
      out);
  CHECK(part.unconvertible);
}

TEST_CASE("8-bit bytes in a part declared base64 are refused, in the preamble replaced") {
  std::string out;
  auto plan = downgrade_to_7bit("Content-Transfer-Encoding: base64\r\n\r\nQUJD\xff\r\n", out);
  CHECK(plan.unconvertible);
  out = convert("Content-Type: multipart/mixed; boundary=b\r\n\r\npre \xff\r\n--b\r\n\r\nx\r\n--b--\r\n");
  CHECK(out.find("pre ?\r\n") != std::string::npos);
}

TEST_CASE("quoted-printable lines stay within 76 characters and never look like boundaries") {
  std::string out;
  QpEncoder qp;
  std::string line(300, 'a');
  line[75] = '-';  // the first character after the first soft break
  line[150] = '=';
  line += "\xC3\xA9 \t";
  qp.encode(line, true, out);
  CHECK(longest_line(out) <= 76);
  CHECK(out.find("\r\n-") == std::string::npos);
  CHECK(out.find(" \r\n") == std::string::npos);  // trailing whitespace encoded
  CHECK(ends_with(out, "=09\r\n"));
  CHECK(qp_decode(out) == line + "\r\n");
}

TEST_CASE("an endless 8-bit line is encoded in bounded pieces and a CRLF split between pieces survives") {
  std::string body;
  for (int i = 0; i < 20000; ++i) body += (i % 7 == 0) ? "\xC3\xA9" : "ab";
  body += "\r\n";
  // 4095 bytes and a CR fill the first piece exactly: the LF comes in the next.
  std::string message = "Subject: long\r\n\r\n" + std::string(4095, 'x') + "\r\n" + body;
  auto out = convert(message);
  CHECK(longest_line(out) <= 998);
  CHECK(qp_decode(out.substr(out.find("\r\n\r\n") + 4)) == message.substr(message.find("\r\n\r\n") + 4));
}

TEST_CASE("the result does not depend on how the input is chunked") {
  std::string message =
      "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + kUtf8 +
      "\r\n--zz--\r\n";
  std::string whole;
  downgrade_to_7bit(message, whole);
  DowngradeScanner scanner;
  for (char c : message) scanner.feed(std::string_view(&c, 1));
  auto plan = scanner.finish();
  DowngradeEncoder encoder(plan);
  std::string bytewise;
  for (char c : message) encoder.feed(std::string_view(&c, 1), bytewise);
  encoder.finish(bytewise);
  CHECK(bytewise == whole);
}

TEST_CASE("malformed MIME is passed on without failing") {
  SECTION("multipart without a boundary parameter is one leaf") {
    auto out = convert("Content-Type: multipart/mixed\r\n\r\n--x\r\n" + kUtf8 + "\r\n");
    CHECK(qp_decode(out.substr(out.find("\r\n\r\n") + 4)) == "--x\r\n" + kUtf8 + "\r\n");
  }
  SECTION("an unterminated multipart and a part without a header end") {
    auto out = convert("Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n" + kUtf8 + "\r\n--q\r\nX: y");
    CHECK(ends_with(out, "\r\n--q\r\nX: y"));
  }
  SECTION("an outer boundary ends unterminated inner parts") {
    DowngradePlan plan;
    auto out = convert(
        "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n"
        "--i\r\n\r\n" +
            kUtf8 + "\r\n--o\r\n\r\n" + kUtf8 + "\r\n--o--\r\n",
        &plan);
    CHECK(plan.convert == std::vector<std::size_t>{2, 3});
  }
  SECTION("nesting beyond the limit is opaque: 8-bit there is refused, 7-bit passes") {
    std::string deep, ends;
    for (int i = 0; i < 2000; ++i) {
      deep +=
          "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" + std::to_string(i) + "\r\n";
      ends = "\r\n--b" + std::to_string(i) + "--" + ends;
    }
    std::string out;
    CHECK(downgrade_to_7bit(deep + "\r\nascii" + ends, out).convert.empty());
    CHECK(out == deep + "\r\nascii" + ends);
    auto plan = downgrade_to_7bit(deep + "\r\n\xff" + ends, out);
    CHECK(plan.unconvertible);
  }
  SECTION("a huge number of parts is bounded by the entity limit") {
    std::string many = "Content-Type: multipart/mixed; boundary=m\r\n\r\n";
    for (int i = 0; i < 300; ++i) many += "--m\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xC3\xA9\r\n";
    many += "--m--\r\n";
    DowngradeLimits limits;
    limits.max_entities = 100;
    std::string out;
    auto plan = downgrade_to_7bit(many, out, limits);
    CHECK(plan.unconvertible);
    CHECK(plan.convert.size() == 99);
  }
  SECTION("an oversized header section is opaque") {
    DowngradeLimits limits;
    limits.max_header_bytes = 1000;
    std::string out;
    auto plan = downgrade_to_7bit("X: " + std::string(2000, 'h') + "\r\n\r\n\xC3\xA9\r\n", out, limits);
    CHECK(plan.unconvertible);
    convert("X: " + std::string(2000, 'h') + "\r\n\r\nascii\r\n", nullptr, limits);
  }
}

TEST_CASE("random MIME-ish input never breaks the two passes") {
  const std::vector<std::string> atoms = {"Content-Type: multipart/mixed; boundary=a\r\n",
                                          "Content-Type: multipart/digest; boundary=\"b\"\r\n",
                                          "Content-Type: message/rfc822\r\n",
                                          "Content-Transfer-Encoding: 8bit\r\n",
                                          "Content-Transfer-Encoding: base64\r\n",
                                          "Content-Type: text/plain\r\n",
                                          "\r\n",
                                          "--a\r\n",
                                          "--a--\r\n",
                                          "--b\r\n",
                                          "--b--\r\n",
                                          "text line\r\n",
                                          "\xC3\xA9t\xC3\xA9\r\n",
                                          "=\r\n",
                                          "\n",
                                          "\r",
                                          " \t\r\n",
                                          "-",
                                          "\xff",
                                          std::string(5000, 'L'),
                                          "Subject: s\r\n",
                                          "(comment)"};
  std::mt19937 rng(20240611);
  for (int round = 0; round < 400; ++round) {
    std::string message;
    int n = std::uniform_int_distribution<int>(1, 60)(rng);
    for (int i = 0; i < n; ++i) message += atoms[std::uniform_int_distribution<std::size_t>(0, atoms.size() - 1)(rng)];
    std::string out;
    auto plan = downgrade_to_7bit(message, out);
    if (plan.unconvertible) continue;
    INFO("round " << round);
    CHECK(plan.converted_size == out.size());
    CHECK(all_7bit(out));
    if (!plan.has_8bit) CHECK(out == message);
  }
}
