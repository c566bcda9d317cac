// libFuzzer target for the 8-bit to 7-bit MIME downgrade
// (deliver/mime_downgrade.cpp): any message must be planned and converted
// without a crash; a convertible plan must yield 7-bit output of exactly the
// announced size, bounded by the input; a message without 8-bit bytes must pass
// unchanged; and the streaming passes fed in small chunks must agree with the
// one-shot conversion, since the deliverer streams the body from PostgreSQL.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mime_downgrade.h"

namespace {

using namespace wsmtp::common::mail;

// A broken property is a crash, named by its line for the reproducer's reader.
void check(bool ok, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "property failed: %s:%d\n", file, line);
  std::abort();
}

bool is_7bit(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

bool same_plan(const DowngradePlan& a, const DowngradePlan& b) {
  return a.has_8bit == b.has_8bit && a.unconvertible == b.unconvertible && a.header_8bit == b.header_8bit &&
         a.problem == b.problem && a.convert == b.convert && a.input_size == b.input_size &&
         a.converted_size == b.converted_size;
}

// Both passes fed in pieces of `step` bytes, as the deliverer streams a body.
DowngradePlan chunked(std::string_view message, std::size_t step, const DowngradeLimits& limits, std::string& out) {
  DowngradeScanner scanner(limits);
  for (std::size_t pos = 0; pos < message.size(); pos += step) scanner.feed(message.substr(pos, step));
  auto plan = scanner.finish();
  if (plan.unconvertible) return plan;
  DowngradeEncoder encoder(plan, limits);
  for (std::size_t pos = 0; pos < message.size(); pos += step) encoder.feed(message.substr(pos, step), out);
  encoder.finish(out);
  return plan;
}

void run(std::string_view message, const DowngradeLimits& limits, std::size_t step) {
  std::string out;
  auto plan = downgrade_to_7bit(message, out, limits);
  check(plan.input_size == message.size());
  check(!plan.header_8bit || plan.unconvertible);
  check(!plan.unconvertible || (plan.has_8bit && !plan.problem.empty() && out.empty()));
  if (!plan.has_8bit) check(plan.convert.empty() && !plan.unconvertible && out == message);
  if (!plan.unconvertible) {
    check(is_7bit(out));
    check(out.size() == plan.converted_size);
    // Quoted-printable at most triples a byte, soft line breaks add 3 per 73,
    // and each converted entity gains a rewritten header line.
    check(out.size() <= 4 * message.size() + 128 * (plan.convert.size() + 1));
  }
  std::string streamed;
  auto plan2 = chunked(message, step, limits, streamed);
  check(same_plan(plan, plan2));
  if (!plan.unconvertible) check(streamed == out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view message(reinterpret_cast<const char*>(data), size);
  // The chunk size comes from the input so the fuzzer can steer the splits.
  const std::size_t step = size == 0 ? 1 : 1 + data[size - 1] % 17;
  run(message, DowngradeLimits{}, step);
  // Tight limits reach the "opaque" fallbacks with small inputs.
  run(message, DowngradeLimits{3, 12, 200}, step);
  return 0;
}
