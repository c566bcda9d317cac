"""The real-milter harness (tests/harness/milters.py) checked against Postfix,
an MTA that already speaks milters: rspamd, OpenDKIM and OpenDMARC from Debian's
packages, started privately, and unbound serving their DNS in a network
namespace. If these pass and the same checks against wsmtp fail
(test_milter_real.py), the fault is in wsmtp, not in the peers' setup.

Each Postfix instance has its own smtpd_milters:
  rspamd       GTUBE refused with rspamd's reply, rspamd's headers on the rest,
               and rspamd stopped: EHLO 250, MAIL 451 4.7.1 (milter_default_action tempfail);
  signing      OpenDKIM signing for a trusted client (InternalHosts 127.0.0.1),
               the signature checked by python3-dkim against the key made by opendkim-genkey;
  verifying    OpenDKIM then OpenDMARC, against the namespace's DNS: dkim=pass,
               dkim=fail when tampered, a DMARC p=reject failure refused, and a
               message aligned by DKIM alone passing DMARC (OpenDMARC sees
               OpenDKIM's Authentication-Results: Postfix gives each milter the
               earlier milters' changes).
"""
import email
import os
import shutil
import smtplib
import tempfile

import milters
import pytest
from deliver_postfix import Postfix
from pipeline import wait_until

if os.geteuid() != 0:
    pytest.skip("the milters' DNS runs in a network namespace, which needs root", allow_module_level=True)
_no_netns = milters.probe_netns()
if _no_netns:
    pytest.skip(_no_netns, allow_module_level=True)

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
RCPT = "alice@example.test"


@pytest.fixture(scope="module")
def tmp():
    # Not pytest's tmp_path: its base is private to root, and rspamd and
    # Postfix's daemons run as their own users.
    d = tempfile.mkdtemp(prefix="wsmtp-milter-harness-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def peers(tmp, failure_logs):
    """The DNS, the milters and their keys (milters.StandardPeers), shared by the tests below."""
    with milters.StandardPeers(tmp) as peers:
        failure_logs.extend(peers.log_sources())
        yield peers


def postfix(tmp, name, smtpd_milters):
    root = os.path.join(tmp, name)
    os.makedirs(root, exist_ok=True)
    return Postfix(root, "example.test", ["alice"],
                   extra=f"smtpd_milters = {smtpd_milters}\nmilter_default_action = tempfail\n")


def delivered(pf, marker):
    """The one copy in Postfix's Maildir that contains marker."""
    def copies():
        out = []
        for path in pf.maildir_files():
            with open(path, "rb") as f:
                data = f.read()
            if marker.encode() in data:
                out.append(data)
        return out
    wait_until(lambda: copies(), 30, what=f"the message with {marker!r} in Postfix's Maildir")
    found = copies()
    assert len(found) == 1, f"{len(found)} copies of the message with {marker!r}"
    return found[0]


@pytest.fixture(scope="module")
def pf_rspamd(tmp, peers):
    pf = postfix(tmp, "pf-rspamd", peers.rspamd.milter)
    yield pf
    pf.stop()


def test_postfix_rspamd_refuses_gtube_with_rspamds_reply(pf_rspamd):
    with smtplib.SMTP("127.0.0.1", pf_rspamd.port, timeout=60) as s:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            s.sendmail("bob@client.example", [RCPT], f"Subject: gtube\r\n\r\n{GTUBE}\r\n")
    assert refused.value.smtp_code == 554 and b"Gtube pattern" in refused.value.smtp_error, refused.value


def test_postfix_rspamd_adds_its_headers(pf_rspamd, peers):
    with smtplib.SMTP("127.0.0.1", pf_rspamd.port, timeout=60) as s:
        s.sendmail("bob@client.example", [RCPT], milters.ordinary_message("bob@client.example", RCPT, "ordinary"))
    msg = email.message_from_bytes(delivered(pf_rspamd, "ordinary"))
    assert msg["X-Rspamd-Server"] == peers.rspamd.hostname, msg.keys()
    assert msg["X-Spamd-Result"] and msg["X-Spamd-Result"].startswith("default: False"), msg["X-Spamd-Result"]


def test_postfix_opendkim_signs_for_a_trusted_client(tmp, peers):
    pf = postfix(tmp, "pf-signing", peers.signing_dkim.milter)
    try:
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=60) as s:
            s.sendmail(f"carol@{peers.signer.domain}", [RCPT],
                       milters.ordinary_message(f"carol@{peers.signer.domain}", RCPT, "to be signed"))
        raw = delivered(pf, "to be signed")
    finally:
        pf.stop()
    assert b"DKIM-Signature:" in raw, raw[:800]
    assert milters.dkim_verify(raw, peers.signer), "python3-dkim refuses OpenDKIM's signature"
    assert not milters.dkim_verify(raw.replace(b"to be signed", b"to be signeD"), peers.signer), \
        "python3-dkim accepts a signature over a changed body"


@pytest.fixture(scope="module")
def pf_verifying(tmp, peers):
    pf = postfix(tmp, "pf-verifying", f"{peers.verifying_dkim.milter} {peers.dmarc.milter}")
    yield pf
    pf.stop()


def test_postfix_opendkim_verifies_against_the_dns(pf_verifying, peers):
    with smtplib.SMTP("127.0.0.1", pf_verifying.port, timeout=60) as s:
        s.sendmail(f"bob@{peers.sender.domain}", [RCPT], peers.signed_inbound("signed and intact"))
        results = milters.auth_results(delivered(pf_verifying, "signed and intact"))
        assert any("dkim=pass" in r and f"header.d={peers.sender.domain}" in r for r in results), results
        s.sendmail(f"bob@{peers.sender.domain}", [RCPT], peers.signed_inbound("signed, then tampered", tamper=True))
        results = milters.auth_results(delivered(pf_verifying, "signed, then tampered"))
        assert any("dkim=fail" in r for r in results), results


def test_postfix_opendmarc_refuses_a_p_reject_failure(pf_verifying, peers):
    with smtplib.SMTP("127.0.0.1", pf_verifying.port, timeout=60) as s:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            s.sendmail(*peers.dmarc_failure())
    assert refused.value.smtp_code == 550 and b"DMARC" in refused.value.smtp_error, refused.value


def test_postfix_opendmarc_sees_opendkims_result(pf_verifying, peers):
    # Postfix gives each milter the message with the earlier milters' changes
    # applied: OpenDMARC reads OpenDKIM's Authentication-Results, and a message
    # whose only aligned pass is its DKIM signature passes p=reject.
    with smtplib.SMTP("127.0.0.1", pf_verifying.port, timeout=60) as s:
        s.sendmail(*peers.dmarc_pass_by_dkim_only())
    results = milters.auth_results(delivered(pf_verifying, "aligned by DKIM alone"))
    assert any(r.startswith("mx.example.test; dmarc=pass") and f"header.from={peers.signer.domain}" in r
               for r in results), results


def test_postfix_rspamd_stopped_means_451_at_mail(pf_rspamd, peers):
    # Runs last among the rspamd tests: the reference for wsmtp's default
    # action (test_milter_real.py). milter_default_action = tempfail and the
    # milter unreachable at connect: EHLO works, MAIL gets 451 4.7.1, the
    # session goes on.
    peers.rspamd.stop()
    try:
        with smtplib.SMTP("127.0.0.1", pf_rspamd.port, timeout=60) as s:
            assert s.ehlo("client.example")[0] == 250
            code, text = s.mail("bob@client.example")
            assert (code, text[:5]) == (451, b"4.7.1"), (code, text)
            assert s.noop()[0] == 250 and s.rset()[0] == 250
    finally:
        peers.rspamd.start()
