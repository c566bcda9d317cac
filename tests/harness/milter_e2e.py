"""The pipeline and helpers of the milter end-to-end tests: one Pipeline whose
wsmtp is restarted whenever a test needs another `[listener] milters` value
(only wsmtp: wroute and wdeliver keep running), fake milters to point it at,
and the client's and the operator's view of a message (SMTP replies, the
Maildir, `wsmtpctl show`, the queue rows). Knows nothing of any one test.
"""
import email
import json
import os
import re
import smtplib
import sys

# The checks in these tests are plain asserts, which python3 -O (or PYTHONOPTIMIZE)
# strips: refuse to run rather than pass without checking anything.
if not __debug__:
    sys.exit("run the end-to-end tests without -O or PYTHONOPTIMIZE: their checks are asserts")

from fake_milter import FakeMilter, Script  # noqa: E402
from listener_harness import add_auth_user, make_cert, sql  # noqa: E402
from pgtmp import free_port  # noqa: E402
from pipeline import Pipeline, wait_until  # noqa: E402

DOMAIN = "example.test"
MAILBOXES = ("alice", "bob", "carol", "dave")
AUTH_USER, AUTH_PASSWORD = "sam", "milter tests"
# No tarpit and no error limit: many refusals per session are the point here.
LISTENER_EXTRA = ("tarpit_after_errors = 1000\nmax_errors = 1000\nmax_connection_rate = 0\n"
                  "max_connections_per_client = 500\nmax_message_size = 110M\n")


class MilterPipeline:
    """The whole pipeline with wsmtp's milters switchable (use()). fakes: the
    fake milters by name; dead: a spec where nothing listens."""

    def __init__(self, tmp, fake_names=("f1",), unix_fakes=()):
        self.fakes = {name: FakeMilter() for name in fake_names}
        for name in unix_fakes:
            self.fakes[name] = FakeMilter(unix_path=os.path.join(tmp, f"{name}.sock"))
        os.chmod(tmp, 0o755)  # the listener may run as another user and must reach the Unix socket
        self.dead = f"inet:127.0.0.1:{free_port()}"
        cert, key = make_cert(tmp)
        self.milters = ""
        self.p = None
        try:
            self.p = Pipeline(listener_extra=f"{LISTENER_EXTRA}tls_cert_file = {cert}\ntls_key_file = {key}\n"
                                             "milters =\n")
            self.p.add_domain()
            for user in MAILBOXES:
                self.p.add_mailbox(user)
            add_auth_user(self.p, AUTH_USER, AUTH_PASSWORD)
            self.p.start("wsmtp")
            self.p.start("wroute")
            self.p.start("wdeliver")
        except BaseException:
            self.close()
            raise

    def use(self, milters):
        """wsmtp with `milters = <milters>` (restarted only if that changes), every
        fake back to the plain script (continue everywhere) with no records."""
        for fake in self.fakes.values():
            fake.set_script(Script())
        if milters != self.milters:
            with open(self.p.config) as f:
                text = f.read()
            text = re.sub(r"(?m)^milters =.*$", lambda _: f"milters = {milters}", text, count=1)
            with open(self.p.config, "w") as f:
                f.write(text)
            self.p.kill("wsmtp")
            self.p.start("wsmtp")  # waits until a NOOP is answered
            self.milters = milters
            for fake in self.fakes.values():
                fake.set_script(Script())  # without the records of the start's NOOP session
        return self

    def close(self):
        if self.p is not None:
            self.p.close()
        for fake in self.fakes.values():
            fake.stop()

    # --- the client's view ---
    def smtp(self, helo, timeout=30):
        s = smtplib.SMTP("127.0.0.1", self.p.port, timeout=timeout)
        code, text = s.ehlo(helo)
        assert code == 250, f"EHLO {helo}: {code} {text}"
        return s

    # --- the operator's view ---
    def show(self, qid):
        return json.loads(self.p.ctl("--json", "show", qid).stdout)

    def show_text(self, qid):
        return self.p.ctl("show", qid).stdout

    def queued_rows(self, sender):
        """How many messages from sender reached state 1 or later."""
        rows = sql(self.p, "SELECT count(*) FROM messages WHERE state >= 1 AND envelope_from IN "
                           f"('{sender}', '<{sender}>')")
        return int(rows[0][0])

    def delivered(self, user, marker, timeout=30):
        """The message in user's Maildir containing marker (bytes of its text), waiting for it."""
        found = []

        def look():
            for path in self.p.maildir_files(user):
                with open(path, "rb") as f:
                    data = f.read()
                if marker.encode() in data:
                    found.append(email.message_from_bytes(data))
                    return True
            return False

        wait_until(look, timeout, what=f"a message with {marker!r} in {user}'s Maildir")
        return found[0]

    def not_delivered(self, user, marker):
        for path in self.p.maildir_files(user):
            with open(path, "rb") as f:
                if marker.encode() in f.read():
                    return False
        return True


def queue_id(reply_text):
    """The queue id of a 250 end-of-data reply ("2.0.0 Ok: queued as N")."""
    text = reply_text.decode() if isinstance(reply_text, bytes) else reply_text
    m = re.search(r"queued as (\S+)", text)
    assert m, f"no queue id in the reply {text!r}"
    return m.group(1)


def message(subject, body="hello\r\n", headers=""):
    return f"From: <someone@client.example>\r\nSubject: {subject}\r\n{headers}\r\n{body}"


def transaction(s, sender, rcpts, text):
    """MAIL, RCPTs and DATA on an open smtplib session. Returns a dict:
    mail, rcpt (list), data (the DATA command's refusal, or None) and end
    (the end-of-data reply, or None), each (code, text as str)."""
    out = {"mail": None, "rcpt": [], "data": None, "end": None}
    code, text_ = s.mail(sender)
    out["mail"] = (code, text_.decode())
    if code != 250:
        return out
    for r in rcpts:
        code, text_ = s.rcpt(r)
        out["rcpt"].append((code, text_.decode()))
    if not any(c == 250 for c, _ in out["rcpt"]):
        return out
    try:
        code, text_ = s.data(text)
        out["end"] = (code, text_.decode())
    except smtplib.SMTPDataError as e:
        out["data"] = (e.smtp_code, e.smtp_error.decode())
    return out


def send_ok(mp, helo, sender, rcpts, text):
    """One session, one message that must be accepted: returns its queue id."""
    with mp.smtp(helo) as s:
        r = transaction(s, sender, rcpts, text)
    assert r["end"] and r["end"][0] == 250, f"message from {sender} not accepted: {r}"
    return queue_id(r["end"][1])


def headers_of(text):
    """The header section of `wsmtpctl show --json` as an email.message.Message."""
    return email.message_from_string(text + "\n\n")
