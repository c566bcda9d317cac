"""8-bit mail to a relay without 8BITMIME (RFC 6152 §3), with the real daemons.

The relay is Postfix's smtp-sink started with -8 (no 8BITMIME in its EHLO). The
pool has the default policy, convert: a multipart message with 8-bit text
parts, a 7-bit part, a base64 attachment and an encapsulated 8-bit message,
and a plain non-MIME 8-bit message, arrive at the relay 7-bit clean, without
BODY=8BITMIME, with quoted-printable where the bytes were 8-bit; every part
decodes (Python's email package) back to exactly the bytes that were sent, and
the parts that were 7-bit already are passed on unchanged. A message with a
raw UTF-8 Subject cannot be converted without SMTPUTF8: the sender gets a DSN
with 5.6.9. A pool set to bounce refuses 8-bit mail with 5.6.3. Bounded: 4
messages, seconds.
"""
import email
import email.policy
import os
import re

import pytest
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until
from deliver_relays import SmtpSink

# The functions below run in file order on one pipeline: the bounce policy is
# set after the convert policy's messages went out.
SENDER = "alice@example.test"
UTF8 = "Grüße aus Köln — ½ € ✓\r\nnaïve café, ÆØÅ æøå, ΑΒΓ, привет, 日本語\r\n=equals= and trailing space \r\n"


def multipart():
    inner = ("Subject: inner\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\n" + UTF8)
    long_line = "ü" * 480 + "\r\n"  # 960 bytes: QP turns it into 38 lines of at most 76
    return ("From: Alice <alice@example.test>\r\nTo: r@far.example\r\nSubject: mixed\r\nMessage-ID: <mixed@t>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=-outer\"\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\nThis is a MIME message.\r\n"
            "--=-outer\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
            "--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + UTF8 + long_line + ".leading dot\r\n"
            "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Grüße — café</p>\r\n--alt--\r\n"
            "--=-outer\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nseven bit only\r\n"
            "--=-outer\r\nContent-Type: application/octet-stream; name=x.bin\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQoLDA0ODw==\r\n"
            "--=-outer\r\nContent-Type: message/rfc822\r\n\r\n" + inner +
            "--=-outer--\r\n")


def plain():
    return "From: alice@example.test\r\nSubject: plain\r\nMessage-ID: <plain@t>\r\n\r\n" + UTF8


def utf8_subject():
    return "From: alice@example.test\r\nSubject: Grüße\r\nMessage-ID: <hdr@t>\r\n\r\nbody\r\n"


def leaves(message):
    """[(content type, decoded payload with LF line ends)] for every leaf part, in order."""
    out = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_type() == "message/rfc822":
            continue
        out.append((part.get_content_type(), part.get_payload(decode=True).replace(b"\r\n", b"\n")))
    return out


def received(sink, subject):
    found = [m for m in sink.messages() if re.search(rb"(?m)^Subject: " + subject.encode() + rb"\r?$", m[2])]
    assert len(found) == 1, f"{subject}: {len(found)} copies at the relay"
    return found[0]


def dsn_status(p, message_id):
    """The Status lines of the DSN in alice's Maildir reporting message_id, or None."""
    for path in p.maildir_files("alice"):
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
        if "report-type=delivery-status" in text and f"Message-ID: {message_id}" in text:
            return re.findall(r"(?m)^Status: (\S+)", text)
    return None


def check_converted(sink, original, subject):
    _frm, _rcpts, raw = received(sink, subject)
    raw = raw[:-1]  # smtp-sink ends each dump with an empty line of its own
    assert all(b < 0x80 for b in raw), f"{subject}: 8-bit bytes reached the relay"
    sent = email.message_from_bytes(original.encode(), policy=email.policy.compat32)
    got = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert leaves(got) == leaves(sent), f"{subject}: decoded parts differ:\n{leaves(got)}\n{leaves(sent)}"
    return raw


@pytest.fixture(scope="module")
def env():
    with Pipeline(lease_time="20s", listener_extra="trusted_networks = 127.0.0.1/32\n") as p:
        set_section(p, "deliver", transports="maildir, relay", retry_base="1s", retry_max="2s",
                    relay_connect_timeout="3s", relay_command_timeout="10s")
        sink = SmtpSink(p.root, "seven", "-8")
        try:
            p.add_domain()
            p.add_mailbox("alice")
            yield p, sink
        finally:
            sink.stop()


@pytest.fixture(scope="module")
def default_policy(env):
    """The default pool's settings as wsmtpctl shows them."""
    return env[0].ctl("relay", "pool-set", "default").stdout


SENT = {"mixed": multipart(), "plain": plain(), "Grüße": utf8_subject()}


@pytest.fixture(scope="module")
def converted(env, default_policy):
    """The three messages sent 8-bit to the relay without 8BITMIME, all DONE."""
    p, sink = env
    p.ctl("relay", "add", "default", "127.0.0.1", "--port", str(sink.port))
    for name in ("wsmtp", "wroute", "wdeliver", "wreaper"):
        p.start(name)
    with p.smtp() as s:
        for text in SENT.values():
            s.sendmail(SENDER, ["r@far.example"], text.encode(), mail_options=["BODY=8BITMIME"])
    wait_until(lambda: queue_counts(p)["DONE"] == 4, 60, interval=0.3, what="3 messages and 1 DSN DONE")
    return p, sink


def test_default_policy_is_convert(default_policy):
    assert "8bit=convert" in default_policy


def test_multipart_arrives_7bit_with_quoted_printable_and_7bit_parts_unchanged(converted):
    raw = check_converted(converted[1], SENT["mixed"], "mixed")
    assert raw.count(b"Content-Transfer-Encoding: quoted-printable") == 3, raw.decode()
    assert b"seven bit only" in raw and b"AAECAwQFBgcICQoLDA0ODw==" in raw
    assert b"Content-Transfer-Encoding: 8bit" not in raw
    assert max(len(line) for line in raw.split(b"\n")) <= 998


def test_plain_8bit_message_arrives_7bit_and_decodes_to_the_original(converted):
    check_converted(converted[1], SENT["plain"], "plain")


def test_envelope_has_no_body_8bitmime(converted):
    sink = converted[1]
    for name in os.listdir(sink.dump_dir):  # the envelope smtp-sink recorded: no BODY=8BITMIME
        with open(os.path.join(sink.dump_dir, name), "rb") as f:
            assert b"BODY=8BITMIME" not in f.read().split(b"\nReceived: ")[0]


def test_raw_utf8_subject_bounces_with_5_6_9(converted):
    p = converted[0]
    assert dsn_status(p, "<hdr@t>") == ["5.6.9"], dsn_status(p, "<hdr@t>")
    error = sql(p, "SELECT last_error FROM deliveries WHERE status = 'bounced'")
    assert error.startswith("5.6.9 ") and "SMTPUTF8" in error, error


def test_pool_set_to_bounce_refuses_8bit_mail_with_5_6_3(converted):
    p, sink = converted
    p.ctl("relay", "pool-set", "default", "--8bit", "bounce")
    with p.smtp() as s:
        s.sendmail(SENDER, ["r@far.example"], plain().replace("plain", "bounced").encode(),
                   mail_options=["BODY=8BITMIME"])
    wait_until(lambda: queue_counts(p)["DONE"] == 6, 60, interval=0.3, what="the bounce-policy message and its DSN")
    error = sql(p, "SELECT last_error FROM deliveries WHERE status = 'bounced' AND last_error LIKE '5.6.3%'")
    assert "does not support 8BITMIME" in error, error
    assert len(sink.messages()) == 2
