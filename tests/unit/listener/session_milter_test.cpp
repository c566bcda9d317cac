// The session's side of the milters: what it sends at each stage, what each
// verdict does to the dialogue, and that end-of-message changes are what is
// stored, for a message held in memory and for one streamed to the store.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "dialogue.h"

namespace wsmtp::listener {
namespace {

using namespace test;
using milter::Event;
using milter::Stage;
using milter::Verdict;

ListenerConfig milter_config() {
  auto c = test_config();
  milter::MilterSpec spec;
  spec.name = "inet:127.0.0.1:11332";
  spec.host = "127.0.0.1";
  spec.port = 11332;
  c.milters = std::make_shared<const milter::MilterSpecs>(milter::MilterSpecs{spec});
  c.max_message_size = 4 << 20;
  return c;
}

std::map<std::string, std::string> macros_of(const Event& e) { return {e.macros.begin(), e.macros.end()}; }

const Event* first(const std::vector<Event>& events, Stage stage) {
  for (const auto& e : events)
    if (e.stage == stage) return &e;
  return nullptr;
}

Verdict verdict(Verdict::Kind kind) {
  Verdict v;
  v.kind = kind;
  v.milter = "inet:127.0.0.1:11332";
  return v;
}

// A milter that answers `kind` at `stage` and continues elsewhere, with the
// changes at end of message.
std::function<Verdict(const Event&)> answer_at(Stage stage, Verdict answer) {
  return [stage, answer](const Event& e) { return e.stage == stage ? answer : Verdict{}; };
}

milter::Reply change(milter::Reply::Kind kind, std::string name = {}, std::string value = {}) {
  milter::Reply r;
  r.kind = kind;
  r.name = std::move(name);
  r.value = std::move(value);
  return r;
}

const std::string kSmallMessage = "Subject: hello\r\nFrom: <a@example.net>\r\n\r\nline one\r\n.\r\n";

}  // namespace

TEST_CASE("milters get every stage with Postfix's macros, the body after the header section", "[session][milter]") {
  Dialogue d(milter_config());
  d.hello();
  auto out = d.send("MAIL FROM:<a@example.net> SIZE=100\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + kSmallMessage);
  CHECK(codes(out) == std::vector<std::string>{"250 2.1.0", "250 2.1.5", "354", "250 2.0.0"});
  const auto& events = d.milter_events;
  auto* connect = first(events, Stage::connect);
  REQUIRE(connect);
  CHECK(connect->awaited);
  CHECK(connect->address == "192.0.2.10");
  CHECK(connect->client_name == "[192.0.2.10]");
  auto cm = macros_of(*connect);
  CHECK(cm["j"] == "mx.example.org");
  CHECK(cm["{daemon_name}"] == "wsmtp");
  CHECK(cm["{client_addr}"] == "192.0.2.10");
  CHECK(cm["{client_name}"] == "unknown");
  CHECK(cm["_"] == "unknown [192.0.2.10]");
  REQUIRE(first(events, Stage::helo));
  CHECK(first(events, Stage::helo)->text == "client.example.net");
  auto* mail = first(events, Stage::mail);
  REQUIRE(mail);
  CHECK(mail->args == std::vector<std::string>{"<a@example.net>", "SIZE=100"});
  CHECK(macros_of(*mail)["{mail_addr}"] == "a@example.net");
  auto* rcpt = first(events, Stage::rcpt);
  REQUIRE(rcpt);
  CHECK(rcpt->args == std::vector<std::string>{"<alice@example.org>"});
  CHECK(macros_of(*rcpt)["{rcpt_addr}"] == "alice@example.org");
  REQUIRE(first(events, Stage::data));
  CHECK(macros_of(*first(events, Stage::data))["i"] == "42");
  std::vector<std::string> headers;
  std::string body;
  for (const auto& e : events) {
    if (e.stage == Stage::header) headers.push_back(e.text + ":" + e.value);
    if (e.stage == Stage::body) body += e.bytes;
  }
  REQUIRE(headers.size() == 3);
  CHECK(headers[0].rfind("Received: from client.example.net", 0) == 0);
  CHECK(headers[1] == "Subject: hello");
  CHECK(headers[2] == "From: <a@example.net>");
  CHECK(body == "line one\r\n");
  REQUIRE(first(events, Stage::end_of_message));
  CHECK(macros_of(*first(events, Stage::end_of_message))["i"] == "42");
  CHECK(events.back().stage == Stage::end_of_message);
  CHECK(d.store.messages.at(42).committed);
}

TEST_CASE("a milter's refusal at MAIL, RCPT and DATA answers that command; the session goes on", "[session][milter]") {
  Dialogue d(milter_config());
  auto reject = verdict(Verdict::Kind::reject);
  reject.reply = common::smtp::Reply{550, {5, 7, 1}, "Go away"};
  d.milter = answer_at(Stage::mail, reject);
  d.hello();
  CHECK(d.send("MAIL FROM:<spammer@example.net>\r\n") == "550 5.7.1 Go away\r\n");
  // The milters saw MAIL: their message state is reset.
  CHECK(d.milter_events.back().stage == Stage::abort);
  CHECK(codes(d.send("RCPT TO:<alice@example.org>\r\n")) == std::vector<std::string>{"503 5.5.1"});

  d.milter = answer_at(Stage::rcpt, verdict(Verdict::Kind::tempfail));
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")) ==
        std::vector<std::string>{"250 2.1.0", "451 4.7.1", "554 5.5.1"});
  d.milter = answer_at(Stage::data, verdict(Verdict::Kind::reject));
  CHECK(codes(d.send("RSET\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")) ==
        std::vector<std::string>{"250 2.0.0", "250 2.1.0", "250 2.1.5", "550 5.7.1"});
  d.milter = [](const Event&) { return Verdict{}; };
  CHECK(codes(d.send("RSET\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + kSmallMessage)) ==
        std::vector<std::string>{"250 2.0.0", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"});
  CHECK(d.store.messages.size() == 1);
}

TEST_CASE("a refusal at connect answers every MAIL; EHLO, NOOP and QUIT still work", "[session][milter]") {
  Dialogue d(milter_config());
  d.milter = answer_at(Stage::connect, verdict(Verdict::Kind::tempfail));
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\n")) == std::vector<std::string>{"451 4.7.1"});
  CHECK(codes(d.send("NOOP\r\nMAIL FROM:<a@example.net>\r\nQUIT\r\n")) ==
        std::vector<std::string>{"250 2.0.0", "451 4.7.1", "221 2.0.0"});
  CHECK(d.store.messages.empty());
}

TEST_CASE("refused, discarded and shut down at end of message: nothing is stored", "[session][milter]") {
  Dialogue d(milter_config());
  d.milter = answer_at(Stage::end_of_message, verdict(Verdict::Kind::reject));
  d.hello();
  const std::string transaction = "MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n";
  CHECK(codes(d.send(transaction + kSmallMessage)).back() == "550 5.7.1");
  d.milter = answer_at(Stage::end_of_message, verdict(Verdict::Kind::discard));
  auto out = d.send(transaction + kSmallMessage);
  CHECK(codes(out).back() == "250 2.0.0");
  CHECK(out.find("43") != std::string::npos);  // the queue id, as for any accepted message
  d.milter = answer_at(Stage::rcpt, verdict(Verdict::Kind::discard));
  CHECK(codes(d.send(transaction + kSmallMessage)).back() == "250 2.0.0");
  CHECK(d.store.messages.empty());
  d.milter = answer_at(Stage::end_of_message, verdict(Verdict::Kind::shutdown));
  CHECK(codes(d.send(transaction + kSmallMessage)).back() == "421 4.7.0");
  CHECK(d.session().closing());
  CHECK(d.store.messages.empty());
}

TEST_CASE("end-of-message changes are in the stored message and envelope", "[session][milter]") {
  Dialogue d(milter_config());
  Verdict changes;
  changes.changes = {change(milter::Reply::Kind::add_header, "X-Spam", "no"),
                     change(milter::Reply::Kind::change_header, "Subject", "[checked] hello"),
                     change(milter::Reply::Kind::insert_header, "X-First", "1")};
  auto from = change(milter::Reply::Kind::change_from);
  from.address = "<bounces@example.net>";
  auto add = change(milter::Reply::Kind::add_rcpt);
  add.address = "<bob@example.org>";
  auto del = change(milter::Reply::Kind::delete_rcpt);
  del.address = "<ALICE@example.org>";
  changes.changes.insert(changes.changes.end(), {from, add, del});
  d.milter = answer_at(Stage::end_of_message, changes);
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + kSmallMessage)).back() ==
        "250 2.0.0");
  const auto& m = d.store.messages.at(42);
  CHECK(m.committed);
  CHECK(m.envelope.envelope_from == "bounces@example.net");
  CHECK(m.envelope.recipients == std::vector<std::string>{"bob@example.org"});
  CAPTURE(m.body);
  CHECK(m.body.rfind("X-First: 1\r\nReceived: from", 0) == 0);
  CHECK(m.body.find("Subject: [checked] hello\r\nFrom: <a@example.net>\r\nX-Spam: no\r\n\r\nline one\r\n") !=
        std::string::npos);
  CHECK(m.held_reason.empty());
}

TEST_CASE("quarantine stores the message held with the milter's reason", "[session][milter]") {
  Dialogue d(milter_config());
  Verdict held;
  auto q = change(milter::Reply::Kind::quarantine);
  q.reason = "looks like phishing";
  held.changes = {q};
  held.changed_by = {"inet:127.0.0.1:11332"};
  d.milter = answer_at(Stage::end_of_message, held);
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + kSmallMessage)).back() ==
        "250 2.0.0");
  const auto& m = d.store.messages.at(42);
  CHECK(m.committed);
  CHECK(m.held_reason == "milter inet:127.0.0.1:11332: looks like phishing");
  CHECK(m.body.find("Subject: hello\r\n") != std::string::npos);
  CHECK(m.body.find("line one\r\n") != std::string::npos);
}

TEST_CASE("a streamed message: body chunks of at most 64 KiB to the milters, header changes as chunk 0",
          "[session][milter]") {
  Dialogue d(milter_config());
  Verdict changes;
  changes.changes = {change(milter::Reply::Kind::change_header, "Subject", "[big] hello")};
  auto add = change(milter::Reply::Kind::add_rcpt);
  add.address = "<bob@example.org>";
  auto q = change(milter::Reply::Kind::quarantine);
  q.reason = "big";
  changes.changes.push_back(add);
  changes.changes.push_back(q);
  changes.milter = "inet:127.0.0.1:11332";
  d.milter = answer_at(Stage::end_of_message, changes);
  d.hello();
  std::string line(998, 'x');
  std::string body;
  for (int i = 0; i < 400; ++i) body += line + "\r\n";  // ~400 KB: several store chunks
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: hello\r\n\r\n" +
                     body + ".\r\n"))
            .back() == "250 2.0.0");
  std::string seen;
  for (const auto& e : d.milter_events) {
    if (e.stage != Stage::body) continue;
    CHECK(e.bytes.size() <= milter::kMaxBodyChunk);
    seen += e.bytes;
  }
  CHECK(seen == body);
  const auto& m = d.store.messages.at(42);
  CHECK(m.committed);
  REQUIRE(m.chunks.count(0) == 1);
  CHECK(m.chunks.at(0).find("Subject: [big] hello\r\n\r\n") != std::string::npos);
  CHECK(m.body.substr(m.chunks.at(0).size()) == body);
  CHECK(m.envelope.recipients == std::vector<std::string>{"alice@example.org", "bob@example.org"});
  CHECK(m.held_reason == "milter inet:127.0.0.1:11332: big");
  CHECK(m.size == static_cast<std::int64_t>(m.body.size()));
}

TEST_CASE("a replaced body replaces a streamed message's body", "[session][milter]") {
  Dialogue d(milter_config());
  Verdict replaced;
  auto part = change(milter::Reply::Kind::replace_body);
  part.body = "new body\n";  // bare LF from the milter: stored as CRLF
  auto part2 = part;
  part2.body = "second line\r\n";
  replaced.changes = {part, part2};
  d.milter = answer_at(Stage::end_of_message, replaced);
  d.hello();
  std::string body;
  for (int i = 0; i < 300; ++i) body += std::string(998, 'y') + "\r\n";
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: s\r\n\r\n" + body +
                     ".\r\n"))
            .back() == "250 2.0.0");
  const auto& m = d.store.messages.at(42);
  CHECK(m.committed);
  CHECK(m.body.find("Subject: s\r\n\r\nnew body\r\nsecond line\r\n") != std::string::npos);
  CHECK(m.body.find("yyyy") == std::string::npos);
  CHECK(m.size == static_cast<std::int64_t>(m.body.size()));
}

TEST_CASE("a header section bigger than a chunk is refused when milters must see it", "[session][milter]") {
  Dialogue d(milter_config());
  d.hello();
  std::string headers;
  for (int i = 0; i < 200; ++i) headers += "X-Filler-" + std::to_string(i) + ": " + std::string(900, 'h') + "\r\n";
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + headers +
                     "\r\nbody\r\n.\r\n"))
            .back() == "552 5.3.4");
  CHECK(codes(d.send("NOOP\r\n")) == std::vector<std::string>{"250 2.0.0"});
}

TEST_CASE("BDAT: a refusal at DATA consumes the chunk, then refuses it", "[session][milter][bdat]") {
  Dialogue d(milter_config());
  d.milter = answer_at(Stage::data, verdict(Verdict::Kind::reject));
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nBDAT 5 LAST\r\nhelloNOOP\r\n")) ==
        std::vector<std::string>{"250 2.1.0", "250 2.1.5", "550 5.7.1", "250 2.0.0"});
  CHECK(d.store.messages.empty());
}

}  // namespace wsmtp::listener

namespace wsmtp::listener {

TEST_CASE("with several milters each later one sees the content with the earlier ones' changes", "[session][milter]") {
  auto config = milter_config();
  auto specs = *config.milters;
  specs.push_back(specs.front());
  specs.back().name = "unix:/run/opendmarc.sock";
  config.milters = std::make_shared<const milter::MilterSpecs>(specs);
  Dialogue d(config);
  d.milter = [](const Event& e) {
    Verdict v;
    if (e.stage == Stage::end_of_message && e.milter == 0)
      v.changes = {change(milter::Reply::Kind::add_header, "Authentication-Results", "mx; dkim=pass")};
    return v;
  };
  d.hello();
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + kSmallMessage)).back() ==
        "250 2.0.0");
  // The first milter got the content as it came; the second only after the first's end of message, with its header.
  std::vector<std::string> second;
  int first_eom = -1, second_eom = -1;
  for (std::size_t i = 0; i < d.milter_events.size(); ++i) {
    const auto& e = d.milter_events[i];
    if (e.stage == Stage::header || e.stage == Stage::body) CHECK(e.milter >= 0);
    if (e.stage == Stage::header && e.milter == 1) second.push_back(e.text + ":" + e.value);
    if (e.stage == Stage::body && e.milter == 1) CHECK(e.bytes == "line one\r\n");
    if (e.stage == Stage::end_of_message) (e.milter == 0 ? first_eom : second_eom) = static_cast<int>(i);
  }
  REQUIRE(second.size() == 4);
  CHECK(second.back() == "Authentication-Results: mx; dkim=pass");
  CHECK(first_eom >= 0);
  CHECK(second_eom > first_eom);
  CHECK(d.store.messages.at(42).body.find("Authentication-Results: mx; dkim=pass\r\n\r\nline one") !=
        std::string::npos);

  // A message that outgrows memory goes to both as it arrives: the second gets what it missed, once.
  d.milter_events.clear();
  std::string body;
  for (int i = 0; i < 200; ++i) body += std::string(998, 'x') + "\r\n";
  CHECK(codes(d.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: big\r\n\r\n" + body +
                     ".\r\n"))
            .back() == "250 2.0.0");
  std::string to_second, to_all;
  int eoms = 0;
  for (const auto& e : d.milter_events) {
    if (e.stage == Stage::body && e.milter == 1) to_second += e.bytes;
    if (e.stage == Stage::body && e.milter == -1) to_all += e.bytes;
    if (e.stage == Stage::end_of_message) {
      ++eoms;
      CHECK(e.milter == -1);
    }
  }
  CHECK(eoms == 1);
  CHECK(to_second + to_all == body);
}

}  // namespace wsmtp::listener
