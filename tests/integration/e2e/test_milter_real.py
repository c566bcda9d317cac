"""wsmtp with the real milters from Debian's packages (issue 18, "Tests with the
real milters"): rspamd in milter mode, then OpenDKIM (signing for
authenticated clients, verifying the rest against a real DNS), then OpenDMARC,
all started privately by tests/harness/milters.py; mail goes through the whole
pipeline into a Maildir.

  - GTUBE is refused with rspamd's own reply, and never queued;
  - an ordinary message reaches the Maildir with rspamd's headers, its
    X-Rspamd-Queue-Id the queue id of the 250 reply (the `i` macro);
  - an authenticated client's message is signed by OpenDKIM, and python3-dkim
    accepts the Maildir copy's signature against the key opendkim-genkey made,
    and refuses it once the copy is changed;
  - an inbound message signed by sender.example gets dkim=pass, a tampered one
    dkim=fail (the key from unbound, in the milters' network namespace);
  - a DMARC p=reject failure is refused by OpenDMARC, and never queued;
  - mail aligned by DKIM alone passes DMARC: OpenDMARC sees OpenDKIM's result;
  - rspamd stopped: 451 4.7.1 (milter_default_action tempfail), in the session
    that was open and in a new one, while EHLO, NOOP, RSET and QUIT still work;
    rspamd started again, a new session's mail is accepted.

test_milter_harness.py checks the same peers against Postfix: when that passes
and this fails, wsmtp is at fault. The functions run in file order; rspamd is
stopped last.
"""
import email
import os
import re
import shutil
import smtplib
import tempfile

import milters
import pytest
from listener_harness import add_auth_user, client_tls_context, make_cert, sql
from pipeline import Pipeline, wait_until

if os.geteuid() != 0:
    pytest.skip("the milters' DNS runs in a network namespace, which needs root", allow_module_level=True)
_no_netns = milters.probe_netns()
if _no_netns:
    pytest.skip(_no_netns, allow_module_level=True)

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
TEMPFAIL = (451, "4.7.1")


@pytest.fixture(scope="module")
def tmp():
    # Not pytest's tmp_path: its base is private to root, and rspamd runs as _rspamd.
    d = tempfile.mkdtemp(prefix="wsmtp-milter-real-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def peers(tmp, failure_logs):
    with milters.StandardPeers(tmp) as peers:
        failure_logs.extend(peers.log_sources())
        yield peers


@pytest.fixture(scope="module")
def p(tmp, peers):
    cert, key = make_cert(tmp)
    chain = ", ".join([peers.rspamd.milter, peers.verifying_dkim.milter, peers.dmarc.milter])
    extra = (f"milters = {chain}\nmilter_default_action = tempfail\n"
             f"tls_cert_file = {cert}\ntls_key_file = {key}\n")
    with Pipeline(listener_extra=extra) as p:
        p.add_domain()
        p.add_mailbox("alice")
        add_auth_user(p, "carol", "correct horse")
        p.start_all()
        yield p


def rcpt(p):
    return f"alice@{p.domain}"


def transaction(s, sender, recipients, message):
    """(stage, code, text) of the first refusal, or ("DATA", 250, text) when queued."""
    code, text = s.mail(sender)
    if code != 250:
        return "MAIL", code, text.decode()
    for r in recipients:
        code, text = s.rcpt(r)
        if code not in (250, 251):
            return "RCPT", code, text.decode()
    code, text = s.data(message)
    return "DATA", code, text.decode()


def queue_id(text):
    m = re.search(r"queued as (\S+)", text)
    assert m, f"no queue id in the 250 reply: {text!r}"
    return m.group(1)


def delivered(p, marker):
    """The one Maildir copy whose content has marker (bytes: LF line ends, as wdeliver writes it)."""
    def copies():
        out = []
        for path in p.maildir_files("alice"):
            with open(path, "rb") as f:
                data = f.read()
            if marker.encode() in data:
                out.append(data)
        return out
    wait_until(lambda: copies(), 60, what=f"the message with {marker!r} in alice's Maildir")
    found = copies()
    assert len(found) == 1, f"{len(found)} copies of the message with {marker!r}"
    return found[0]


def queued_rows(p, sender):
    """Messages from sender that reached state 1 or later (a refused message must have none)."""
    return int(sql(p, f"SELECT count(*) FROM messages WHERE envelope_from = '{sender}' AND state >= 1")[0][0])


def test_gtube_refused_with_rspamds_reply_and_never_queued(p):
    sender = "gtube@client.example"
    with p.smtp() as s:
        s.ehlo("client.example")
        stage, code, text = transaction(s, sender, [rcpt(p)], f"Subject: gtube\r\n\r\n{GTUBE}\r\n")
        # rspamd's SMFIR_REPLYCODE for its reject action on GTUBE.
        assert (stage, code) == ("DATA", 554) and text.startswith("5.7.1") and "Gtube pattern" in text, \
            (stage, code, text)
        assert s.noop()[0] == 250, "the session goes on after the refusal"
    assert queued_rows(p, sender) == 0, "a message rspamd refused reached state 1"


def test_ordinary_message_delivered_with_rspamds_headers(p, peers):
    with p.smtp() as s:
        s.ehlo("client.example")
        stage, code, text = transaction(s, "bob@client.example", [rcpt(p)],
                                        milters.ordinary_message("bob@client.example", rcpt(p), "ordinary mail"))
        assert (stage, code) == ("DATA", 250), (stage, code, text)
    qid = queue_id(text)
    msg = email.message_from_bytes(delivered(p, "ordinary mail"))
    assert msg["X-Rspamd-Server"] == peers.rspamd.hostname, f"rspamd's headers missing: {msg.keys()}"
    assert (msg["X-Spamd-Result"] or "").startswith("default: False"), msg["X-Spamd-Result"]
    assert msg["X-Rspamd-Action"] == "no action", msg["X-Rspamd-Action"]
    # rspamd names the message by the `i` macro wsmtp sends: the id of the 250 reply.
    assert msg["X-Rspamd-Queue-Id"] == qid, (msg["X-Rspamd-Queue-Id"], qid)


def test_opendkim_signs_an_authenticated_clients_message(p, peers):
    sender = f"carol@{peers.signer.domain}"
    with p.smtp() as s:
        s.ehlo("client.example")
        s.starttls(context=client_tls_context())
        s.ehlo("client.example")
        s.login("carol", "correct horse")
        stage, code, text = transaction(s, sender, [rcpt(p)],
                                        milters.ordinary_message(sender, rcpt(p), "signed by opendkim"))
        assert (stage, code) == ("DATA", 250), (stage, code, text)
    raw = delivered(p, "signed by opendkim")
    msg = email.message_from_bytes(raw)
    signature = " ".join((msg["DKIM-Signature"] or "").split())
    assert f"d={peers.signer.domain};" in signature and f"s={peers.signer.selector};" in signature, \
        f"no DKIM-Signature by {peers.signer.domain} in the Maildir copy: {msg.keys()}"
    assert milters.dkim_verify(raw, peers.signer), f"python3-dkim refuses OpenDKIM's signature: {signature}"
    tampered = raw.replace(b"signed by opendkim", b"signed by opendkiM")
    assert not milters.dkim_verify(tampered, peers.signer), "python3-dkim accepts the signature over a changed body"


def test_inbound_signed_message_gets_dkim_pass_and_a_tampered_one_dkim_fail(p, peers):
    sender = f"bob@{peers.sender.domain}"
    with p.smtp() as s:
        s.ehlo("client.example")
        for tamper, body in ((False, "inbound intact"), (True, "inbound tampered")):
            stage, code, text = transaction(s, sender, [rcpt(p)], peers.signed_inbound(body, tamper=tamper))
            assert (stage, code) == ("DATA", 250), (body, stage, code, text)
    intact = milters.auth_results(delivered(p, "inbound intact"))
    assert any(r.startswith("mx.example.test;") and "dkim=pass" in r and f"header.d={peers.sender.domain}" in r
               for r in intact), f"no dkim=pass from OpenDKIM: {intact}"
    tampered = milters.auth_results(delivered(p, "inbound tampered"))
    assert any("dkim=fail" in r and f"header.d={peers.sender.domain}" in r for r in tampered), \
        f"no dkim=fail from OpenDKIM: {tampered}"
    assert not any("dkim=pass" in r for r in tampered), tampered


def test_dmarc_p_reject_failure_refused_by_opendmarc(p, peers):
    sender, recipients, message = peers.dmarc_failure(rcpt(p))
    with p.smtp() as s:
        s.ehlo("client.example")
        stage, code, text = transaction(s, sender, recipients, message)
        assert (stage, code) == ("DATA", 550) and "DMARC" in text, (stage, code, text)
    assert queued_rows(p, sender) == 0, "a message OpenDMARC refused reached state 1"


def test_opendmarc_sees_opendkims_result(p, peers):
    # Beyond the list, for the deployment deploy/README.md describes:
    # OpenDMARC does no DKIM of its own and trusts OpenDKIM's
    # Authentication-Results. Here SPF passes for another domain (not aligned),
    # so DMARC passes signer.example's p=reject only if OpenDMARC, after
    # OpenDKIM in the chain, is given the header OpenDKIM added, as Postfix does
    # (test_milter_harness.py); otherwise this mail, signed by its own domain, is refused.
    sender, recipients, message = peers.dmarc_pass_by_dkim_only(rcpt(p))
    with p.smtp() as s:
        s.ehlo("client.example")
        stage, code, text = transaction(s, sender, recipients, message)
        assert (stage, code) == ("DATA", 250), \
            ("OpenDMARC did not see OpenDKIM's dkim=pass (later milters get earlier milters' headers?)", stage, code, text)
    results = milters.auth_results(delivered(p, "aligned by DKIM alone"))
    assert any("dmarc=pass" in r and f"header.from={peers.signer.domain}" in r for r in results), results


def test_rspamd_stopped_means_451_and_the_session_goes_on(p, peers):
    sender = "later@client.example"
    with p.smtp() as open_session:
        open_session.ehlo("client.example")
        stage, code, text = transaction(open_session, sender, [rcpt(p)],
                                        milters.ordinary_message(sender, rcpt(p), "before the stop"))
        assert (stage, code) == ("DATA", 250), ("rspamd running", stage, code, text)
        peers.rspamd.stop()
        try:
            # The session that was open when rspamd went away.
            code, text = open_session.mail(sender)
            assert (code, text.decode()[:5]) == TEMPFAIL, ("open session, MAIL after the stop", code, text)
            assert open_session.noop()[0] == 250 and open_session.rset()[0] == 250
            code, text = open_session.mail(sender)
            assert (code, text.decode()[:5]) == TEMPFAIL, ("open session, MAIL after RSET", code, text)
            # A new session: the connect stage already finds rspamd gone. As
            # with a tempfail verdict at connect (and as Postfix does,
            # test_milter_harness.py), EHLO still works and MAIL gets the 451.
            with p.smtp() as s:
                code, text = s.ehlo("client.example")
                assert code == 250, ("new session, EHLO with a milter unreachable at connect", code, text)
                stage, code, text = transaction(s, sender, [rcpt(p)],
                                                milters.ordinary_message(sender, rcpt(p), "while stopped"))
                assert (stage, code, text[:5]) == ("MAIL", *TEMPFAIL), ("new session", stage, code, text)
                assert s.noop()[0] == 250 and s.rset()[0] == 250
                assert s.docmd("QUIT")[0] == 221
        finally:
            peers.rspamd.start()
    with p.smtp() as s:
        s.ehlo("client.example")
        stage, code, text = transaction(s, sender, [rcpt(p)],
                                        milters.ordinary_message(sender, rcpt(p), "after the restart"))
        assert (stage, code) == ("DATA", 250), ("rspamd started again, new session", stage, code, text)
    assert b"X-Rspamd-Server" in delivered(p, "after the restart")
