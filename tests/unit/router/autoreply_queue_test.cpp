// Which planned vacation replies of a message are due (router/autoreply_queue.h):
// RFC 3834's rules applied per message before any claim, the headers read only
// when a reply is planned, and each reply's position among the planned ones.
#include <catch2/catch.hpp>

#include "autoreply_queue.h"

using namespace wsmtp;
using common::mail::HeaderBlock;

namespace {

struct Message {
  explicit Message(std::string sender, const char* header_text)
      : headers(HeaderBlock::parse(header_text)), context{std::move(sender), [this]() -> const HeaderBlock& {
                                                            ++reads;
                                                            return headers;
                                                          }} {}
  HeaderBlock headers;
  int reads = 0;
  router::MessageContext context;
};

}  // namespace

TEST_CASE("due auto-replies: the RFC 3834 rules per message, positions among the planned replies") {
  Message m("s@remote.example", "To: ann@example.org, al@example.org\r\nSubject: hi\r\n\r\n");
  auto due = router::due_autoreplies(7, m.context,
                                     {{"bo@example.org", "bo@example.org"},      // not in To/Cc: skipped
                                      {"ann@example.org", "ann@example.org"},    // addressed directly
                                      {"carl@example.org", "al@example.org"}});  // through the alias it was sent to
  REQUIRE(due.size() == 2);
  CHECK(due[0].msg_id == 7);
  CHECK(due[0].mailbox == "ann@example.org");
  CHECK(due[0].sender == "s@remote.example");
  CHECK(due[0].position == 2);
  CHECK(due[0].headers == &m.headers);
  CHECK(due[1].mailbox == "carl@example.org");
  CHECK(due[1].position == 3);
}

TEST_CASE("due auto-replies: none for automata, bulk mail, the mailbox itself, or nothing planned") {
  Message plain("s@remote.example", "To: ann@example.org\r\n\r\n");
  CHECK(router::due_autoreplies(1, plain.context, {}).empty());
  CHECK(plain.reads == 0);                                        // plain mail is routed without reading its headers
  Message own("ann@example.org", "To: ann@example.org\r\n\r\n");  // a mailbox writing to itself
  CHECK(router::due_autoreplies(1, own.context, {{"ann@example.org", "ann@example.org"}}).empty());

  Message null_sender("", "To: ann@example.org\r\n\r\n");
  CHECK(router::due_autoreplies(1, null_sender.context, {{"ann@example.org", "ann@example.org"}}).empty());
  CHECK(null_sender.reads == 0);

  Message bulk("s@remote.example", "To: ann@example.org\r\nPrecedence: bulk\r\n\r\n");
  CHECK(router::due_autoreplies(1, bulk.context, {{"ann@example.org", "ann@example.org"}}).empty());
  Message daemon("mailer-daemon@remote.example", "To: ann@example.org\r\n\r\n");
  CHECK(router::due_autoreplies(1, daemon.context, {{"ann@example.org", "ann@example.org"}}).empty());
}
