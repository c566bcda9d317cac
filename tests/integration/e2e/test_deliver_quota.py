"""Per-mailbox quotas for Maildir delivery, with the real daemons.

bob's mailbox gets a 4K quota with `wsmtpctl mailbox quota`. Under the default
policy (over_quota = defer) the messages that do not fit wait with 4.2.2 and
arrive once a reader (here: the test, as a Maildir++ reader such as Dovecot
would: it removes the files and appends their negative sizes to maildirsize)
empties the Maildir — each exactly once; a message larger than the whole quota
bounces at once with 5.2.3. Then wdeliver is restarted with over_quota = bounce and a
2-message limit: the third message bounces with 5.2.2 and the sender (alice)
gets one DSN. The Maildir never holds more than its quota. Bounded: ~12
messages, well under a minute.
"""
import os
import re

import pytest
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until

# The functions below run in file order on one pipeline: the bounce phase's
# counts include the defer phase's messages.
QUOTA = 4096
SUBJECTS = [f"q{i}" for i in range(8)]


def send(p, subjects, size=900, rcpt="bob"):
    with p.smtp() as s:
        for subject in subjects:
            body = "".join(f"{subject} line {i:04d} " + "x" * 50 + "\r\n" for i in range(size // 70))
            s.sendmail(f"alice@{p.domain}", [f"{rcpt}@{p.domain}"],
                       f"Subject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\n{body}")


def maildir_usage(p, user):
    files = p.maildir_files(user)
    return sum(os.path.getsize(f) for f in files), files


def subject_of(path):
    with open(path, "rb") as f:
        m = re.search(rb"^Subject: (\S+)", f.read(), re.M)
    return m.group(1).decode()


def dsns(p):
    """Status lines of the DSNs in alice's Maildir, by the subject they report."""
    out = {}
    for path in p.maildir_files("alice"):
        with open(path, "rb") as f:
            text = f.read().decode()
        if "report-type=delivery-status" in text:
            status = re.findall(r"^Status: (\S+)", text, re.M)
            reported = re.findall(r"^Subject: (\S+)", text.split("text/rfc822-headers", 1)[1], re.M)
            out[reported[0]] = status
    return out


@pytest.fixture(scope="module")
def p():
    with Pipeline(lease_time="10s") as p:
        set_section(p, "deliver", transports="maildir", retry_base="1s", retry_max="2s")
        p.add_domain()
        p.add_mailbox("alice")
        p.add_mailbox("bob")
        yield p


@pytest.fixture(scope="module")
def quota_set(p):
    """bob's 4K quota, set with wsmtpctl; its output."""
    return p.ctl("mailbox", "quota", f"bob@{p.domain}", "4K").stdout


def test_quota_is_set_shown_and_a_bad_size_refused(p, quota_set):
    assert f"quota {QUOTA} bytes" in quota_set, quota_set
    assert f"quota {QUOTA} bytes" in p.ctl("mailbox", "show", f"bob@{p.domain}").stdout
    assert p.ctl("mailbox", "quota", f"bob@{p.domain}", "lots", check=False).returncode == 1


@pytest.fixture(scope="module")
def defer_phase(p, quota_set):
    """8 messages of ~1K into 4K (some fit, the rest wait with 4.2.2) and one larger than the quota."""
    for name in ("wsmtp", "wroute", "wdeliver", "wreaper"):
        p.start(name)
    send(p, SUBJECTS)
    send(p, ["huge"], size=6000)
    wait_until(lambda: sql(p, "SELECT count(*) FROM deliveries WHERE status = 'pending' AND attempts >= 1 "
                              "AND last_error LIKE '4.2.2 mailbox bob@% is full%'") != "0", 30,
               what="an over-quota deferral")
    return p


def test_a_message_larger_than_the_quota_bounces_with_5_2_3(defer_phase):
    p = defer_phase
    wait_until(lambda: "huge" in dsns(p), 30, what="the DSN for the message larger than the quota")
    assert dsns(p)["huge"] == ["5.2.3"], dsns(p)


def test_only_what_fits_the_quota_is_delivered(defer_phase):
    used, files = maildir_usage(defer_phase, "bob")
    assert 0 < used <= QUOTA and len(files) < len(SUBJECTS), (used, len(files))


def test_deferred_messages_arrive_once_each_after_a_reader_makes_room(defer_phase):
    p = defer_phase
    seen = []

    def drain():
        used_now, present = maildir_usage(p, "bob")
        assert used_now <= QUOTA, f"Maildir holds {used_now} bytes over a {QUOTA}-byte quota"
        for path in present:
            seen.append(subject_of(path))
            size = os.path.getsize(path)
            os.unlink(path)
            # wdeliver reads the usage from maildirsize: a reader records what it removes there.
            with open(os.path.join(p.maildir("bob"), "maildirsize"), "a") as f:
                f.write(f"-{size} -1\n")
        return len(seen) >= len(SUBJECTS)

    wait_until(drain, 60, interval=0.5, what="every deferred message delivered after the reader made room")
    assert sorted(seen) == sorted(SUBJECTS), f"lost or repeated: {sorted(seen)}"
    wait_until(lambda: queue_counts(p)["DONE"] == len(SUBJECTS) + 2, 30, what="all DONE (with the DSN)")
    assert sql(p, "SELECT count(*) FROM deliveries WHERE status = 'bounced'") == "1"


def test_message_limit_with_over_quota_bounce_bounces_the_third_with_5_2_2(p, defer_phase):
    p.kill("wdeliver", sig=15)
    set_section(p, "deliver", transports="maildir", retry_base="1s", retry_max="2s", over_quota="bounce")
    out = p.ctl("mailbox", "quota", f"bob@{p.domain}", "none", "--messages", "2").stdout
    assert "quota 2 messages" in out, out
    p.start("wdeliver")
    send(p, ["b0", "b1", "b2"])
    wait_until(lambda: "b2" in dsns(p) or "b1" in dsns(p) or "b0" in dsns(p), 30, what="the 5.2.2 bounce")
    wait_until(lambda: queue_counts(p)["DONE"] == 10 + 3 + 1, 30, what="the bounce phase DONE")
    bounced = [s for s in ("b0", "b1", "b2") if s in dsns(p)]
    delivered = sorted(subject_of(f) for f in p.maildir_files("bob"))
    assert len(bounced) == 1 and dsns(p)[bounced[0]] == ["5.2.2"], dsns(p)
    assert sorted(delivered + bounced) == ["b0", "b1", "b2"], (delivered, bounced)
    error = sql(p, "SELECT last_error FROM deliveries WHERE status = 'bounced' AND last_error LIKE '5.2.2%'")
    assert "quota 2 messages" in error, error
