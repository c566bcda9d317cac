#!/usr/bin/env python3
"""Untrusted text cannot forge log lines, repaint an operator's terminal or
come back raw in a reply (issue 15, item 10), against the real wsmtp and wsmtpctl.

- An AUTH PLAIN user name with ESC[2J, BS, DEL and a newline followed by a fake
  log line: the failure is logged with those bytes as \\xNN, the log file holds
  no raw control byte, and no line of it starts with the forged text.
- A MAIL parameter with an escape sequence: the 555 reply names it escaped.
- `wsmtpctl show` of a message whose Subject and headers carry OSC/CSI
  sequences (ESC and the C1 form U+009B) prints them escaped, no ESC/BEL/C1.
"""
import base64
import contextlib
import json
import os
import shutil
import smtplib
import sys
import tempfile

try:
    import pytest
except ImportError:  # run as a plain script (main below) by an interpreter without pytest
    pytest = None

if not __debug__:
    sys.exit("run this test without -O or PYTHONOPTIMIZE: their checks are asserts")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
from pipeline import Pipeline, wait_until  # noqa: E402
from listener_harness import RawSmtp, make_cert  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_listener_tls import tls_session  # noqa: E402

CONTROL_BYTES = bytes(range(0x00, 0x20)).replace(b"\n", b"") + b"\x7f"


def log_bytes(p):
    with open(os.path.join(p.log_dir, "wsmtp.log"), "rb") as f:
        return f.read()


def test_auth_user_name_cannot_forge_a_log_line(p):
    c = tls_session(p)
    user = b"evil\x1b[2J\x08\x7f\nFAKE wsmtp[1] info: msg=123 delivered"
    code, _ = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0" + user + b"\0wrong").decode())
    assert code == 535, code
    c.cmd("QUIT")
    c.close()
    wait_until(lambda: b"AUTH failed for user=" in log_bytes(p), 10, what="the AUTH failure logged")
    log = log_bytes(p)
    assert b"AUTH failed for user=evil\\x1b[2J\\x08\\x7f\\x0aFAKE wsmtp[1] info: msg=123 delivered" in log, log
    assert not any(b in CONTROL_BYTES for b in log), [b for b in log if b in CONTROL_BYTES]
    assert not any(line.startswith(b"FAKE") for line in log.splitlines()), log


def test_reply_does_not_echo_control_bytes(p):
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO x")
    c.send(b"MAIL FROM:<a@client.example> X\x1b[2JY=1\r\n")
    code, lines = c.reply()
    assert code == 555, (code, lines)
    assert "\x1b" not in lines[0] and "X\\x1b[2JY" in lines[0], lines
    c.cmd("QUIT")
    c.close()


def test_ctl_show_prints_no_terminal_escapes(p):
    message = (b"Subject: \x1b]0;owned\x07\x1b[2Jhello\r\nX-C1: \xc2\x9b31mred\r\n"
               b"From: <sender@client.example>\r\n\r\nbody\r\n")
    with smtplib.SMTP("127.0.0.1", p.port, timeout=30) as s:
        s.sendmail("sender@client.example", ["alice@example.test"], message)
    ids = [m["id"] for m in json.loads(p.ctl("--json", "list").stdout)]
    assert len(ids) == 1, ids
    r = p.ctl("show", str(ids[0]))
    out = r.stdout
    assert "Subject: \\x1b]0;owned\\x07\\x1b[2Jhello" in out, out
    assert "X-C1: \\xc2\\x9b31mred" in out, out
    assert not any(ch in out for ch in ("\x1b", "\x07", "\x9b", "\r")), repr(out)
    # --json keeps the exact text for scripts; JSON's own escaping makes it safe there.
    shown = json.loads(p.ctl("--json", "show", str(ids[0])).stdout)
    assert "\x1b]0;owned" in shown["headers"], shown["headers"]


@contextlib.contextmanager
def listener_with_tls():
    """wsmtp with STARTTLS (AUTH needs it) and a local mailbox alice."""
    tmp = tempfile.mkdtemp(prefix="wsmtp-untrusted-")
    try:
        cert, key = make_cert(tmp)
        extra = f"tls_cert_file = {cert}\ntls_key_file = {key}\ntarpit_after_errors = 100\n"
        with Pipeline(listener_extra=extra) as pipeline:
            pipeline.add_domain()
            pipeline.add_mailbox("alice")
            pipeline.start("wsmtp")
            yield pipeline
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if pytest:
    @pytest.fixture(scope="module")
    def p():
        with listener_with_tls() as pipeline:
            yield pipeline


def main():
    """Without pytest: the same tests in order, exit status 0 or an AssertionError."""
    tests = [test_auth_user_name_cannot_forge_a_log_line, test_reply_does_not_echo_control_bytes,
             test_ctl_show_prints_no_terminal_escapes]
    with listener_with_tls() as pipeline:
        for test in tests:
            test(pipeline)
            print(f"ok   {test.__name__}", flush=True)
    print("untrusted text: escaped in logs, replies and wsmtpctl show")
    return 0


if __name__ == "__main__":
    sys.exit(main())
