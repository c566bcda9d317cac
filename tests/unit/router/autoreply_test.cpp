#include "router/autoreply.h"

#include <catch2/catch.hpp>

using namespace wsmtp;
using common::mail::HeaderBlock;

TEST_CASE("RFC 3834 sender exclusions") {
  CHECK(router::autoreply_sender_excluded(""));
  CHECK(router::autoreply_sender_excluded("mailer-daemon@x.org"));
  CHECK(router::autoreply_sender_excluded("MAILER-DAEMON@x.org"));
  CHECK(router::autoreply_sender_excluded("owner-team@x.org"));
  CHECK(router::autoreply_sender_excluded("team-request@x.org"));
  CHECK_FALSE(router::autoreply_sender_excluded("ann@x.org"));
  CHECK_FALSE(router::autoreply_sender_excluded("requester@x.org"));
}

TEST_CASE("RFC 3834 message exclusions") {
  auto excluded = [](const char* text) { return router::autoreply_message_excluded(HeaderBlock::parse(text)); };
  CHECK_FALSE(excluded("Subject: hi\r\n\r\n"));
  CHECK_FALSE(excluded("Auto-Submitted: no\r\n\r\n"));
  CHECK_FALSE(excluded("Auto-Submitted: No (a person wrote this)\r\n\r\n"));
  CHECK(excluded("Auto-Submitted: auto-replied\r\n\r\n"));
  CHECK(excluded("auto-submitted: auto-generated\r\n\r\n"));
  CHECK(excluded("Precedence: bulk\r\n\r\n"));
  CHECK(excluded("Precedence: LIST\r\n\r\n"));
  CHECK(excluded("Precedence: junk\r\n\r\n"));
  CHECK_FALSE(excluded("Precedence: first-class\r\n\r\n"));
  CHECK(excluded("List-Id: <team.example.org>\r\n\r\n"));
  CHECK(excluded("list-unsubscribe: <mailto:x@y>\r\n\r\n"));
  CHECK(excluded("X-Loop: team@example.org\r\n\r\n"));
}

TEST_CASE("only mail addressed to the mailbox itself is answered") {
  auto h = HeaderBlock::parse(
      "To: Ann <Ann@Example.org>, bo@example.org\r\nCc: "
      "sales@example.org\r\n\r\n");
  CHECK(router::autoreply_direct_recipient(h, "ann@example.org", "ann@example.org"));
  CHECK(router::autoreply_direct_recipient(h, "cy@example.org",
                                           "sales@example.org"));  // via an alias the sender used
  CHECK_FALSE(router::autoreply_direct_recipient(h, "jo@example.org", "jo@example.org"));
  CHECK_FALSE(
      router::autoreply_direct_recipient(h, "nn@example.org", "nn@example.org"));  // not a suffix match of "ann@"
  CHECK_FALSE(router::autoreply_direct_recipient(HeaderBlock::parse("Bcc: ann@example.org\r\n\r\n"), "ann@example.org",
                                                 "ann@example.org"));
}

TEST_CASE("the reply carries Auto-Submitted, In-Reply-To and References") {
  auto original = HeaderBlock::parse(
      "Subject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: "
      "<m2@x.org>\r\nReferences: <m1@x.org>\r\n\r\n");
  router::AutoReplyMessage r{"ann@example.org", "bo@x.org", "", "Away.\nBack Monday.", "mx.example.org", "ar.1", 0};
  auto text = router::compose_autoreply(r, original);
  CHECK(text ==
        "From: <ann@example.org>\r\n"
        "To: <bo@x.org>\r\n"
        "Subject: Auto: =?utf-8?q?caf=C3=A9?=\r\n"
        "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"
        "Message-ID: <ar.1@mx.example.org>\r\n"
        "In-Reply-To: <m2@x.org>\r\n"
        "References: <m1@x.org> <m2@x.org>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Away.\r\nBack Monday.\r\n");
  r.subject = "Out of office";
  auto no_id = router::compose_autoreply(r, HeaderBlock::parse("Subject: x\r\n\r\n"));
  CHECK(no_id.find("Subject: Out of office\r\n") != std::string::npos);
  CHECK(no_id.find("In-Reply-To") == std::string::npos);
}
