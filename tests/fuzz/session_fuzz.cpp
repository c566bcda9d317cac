// libFuzzer target for the SMTP command side: the input is a client's byte
// stream, fed to a Session the way the event loop does (lines split at LF,
// overlong ones in pieces, BDAT octets raw, nothing while an op is out), with
// store ops answered by the in-memory FakeStore. The session must never crash,
// and everything it says must be well-formed reply lines.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "fake_store.h"
#include "session.h"
#include "store_op.h"

namespace {

using namespace wsmtp::listener;

// Each output line: three digits, then ' ' or '-', then text, then CRLF.
void check_replies(const std::string& out) {
  std::size_t pos = 0;
  while (pos < out.size()) {
    auto end = out.find("\r\n", pos);
    if (end == std::string::npos || end - pos < 4) std::abort();
    if (out[pos] < '2' || out[pos] > '5') std::abort();
    for (std::size_t i = pos + 1; i < pos + 3; ++i)
      if (out[i] < '0' || out[i] > '9') std::abort();
    if (out[pos + 3] != ' ' && out[pos + 3] != '-') std::abort();
    pos = end + 2;
  }
}

std::shared_ptr<const ListenerConfig> fuzz_config() {
  ListenerConfig c;
  c.hostname = "mx.example.org";
  c.max_message_size = 200000;
  c.max_recipients = 5;
  c.max_errors = 50;
  c.tls_cert_file = "/unused";  // advertise STARTTLS so the TLS restart is reachable
  c.tls_key_file = "/unused";
  return std::make_shared<const ListenerConfig>(c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto config = fuzz_config();
  test::FakeStore store;
  SessionContext context{*IpAddress::parse("192.0.2.1"), "fuzz:1",
                         [] { return std::chrono::system_clock::from_time_t(1700000000); }};
  Session session(config, std::move(context));
  std::string input(reinterpret_cast<const char*>(data), size);
  std::size_t pos = 0;
  for (int steps = 0; steps < 10000 && !session.closing(); ++steps) {
    while (session.waiting()) {
      auto op = session.take_store_op();
      if (!op) std::abort();  // waiting without an op to run
      session.on_store_result(run_store_op(store, *op));
    }
    if (session.wants_tls()) {
      pos = input.size();  // the loop discards what was pipelined behind STARTTLS
      session.on_tls_started("fuzz TLS");
      continue;
    }
    if (pos >= input.size()) break;
    if (auto raw = session.raw_remaining(); raw > 0) {
      auto n = std::min<std::size_t>({raw, input.size() - pos, Session::kDataPiece});
      session.on_raw(std::string_view(input).substr(pos, n));
      pos += n;
      continue;
    }
    auto limit = session.max_piece();
    auto lf = input.find('\n', pos);
    if (lf != std::string::npos && lf - pos < limit) {
      session.on_line(std::string_view(input).substr(pos, lf - pos), true);
      pos = lf + 1;
    } else if (input.size() - pos >= limit) {
      session.on_line(std::string_view(input).substr(pos, limit), false);
      pos += limit;
    } else {
      session.on_line(std::string_view(input).substr(pos), false);
      pos = input.size();
    }
    check_replies(session.take_output());
  }
  session.on_disconnect();
  while (session.waiting()) {
    auto op = session.take_store_op();
    if (!op) std::abort();
    session.on_store_result(run_store_op(store, *op));
  }
  for (const auto& [id, m] : store.messages)
    if (m.committed && m.aborted) std::abort();
  return 0;
}
