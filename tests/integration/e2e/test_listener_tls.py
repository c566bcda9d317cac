"""STARTTLS and AUTH against a real wsmtp with a throwaway self-signed
certificate: plaintext pipelined behind STARTTLS is discarded (CVE-2011-0411),
AUTH PLAIN/LOGIN exist only under TLS, wrong passwords are refused and end the
session after max_auth_failures, an authenticated user may relay, the Received:
header names the cipher, and SIGHUP reloads the certificate (and keeps the old
configuration when the new one is bad) without dropping a running session.
"""
import base64
import signal
import smtplib
import subprocess
import time

import pytest
from listener_harness import RawSmtp, add_auth_user, client_tls_context, make_cert, sql
from pipeline import Pipeline

# The functions below run in file order on one listener: the per-address AUTH
# failure count includes the failures of the tests before it.


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return str(tmp_path_factory.mktemp("wsmtp-tls-"))


@pytest.fixture(scope="module")
def p(tmp):
    cert, key = make_cert(tmp)
    extra = (f"tls_cert_file = {cert}\ntls_key_file = {key}\nmax_auth_failures = 3\ntarpit_after_errors = 100\n"
             "max_auth_failures_per_client = 6\n")
    with Pipeline(listener_extra=extra) as p:
        p.tls_cert, p.tls_key = cert, key
        p.add_domain()
        p.add_mailbox("alice")
        add_auth_user(p, "carol", "correct horse")
        p.start("wsmtp")
        yield p


def peer_cert(port):
    c = RawSmtp(port)
    c.reply()
    c.cmd("EHLO x")
    c.cmd("STARTTLS")
    c.starttls()
    der = c.sock.getpeercert(binary_form=True)
    c.close()
    return der


def tls_session(p):
    """A raw session after EHLO, STARTTLS and EHLO again."""
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO x")
    c.cmd("STARTTLS")
    c.starttls()
    c.cmd("EHLO x")
    return c


def test_plaintext_pipelined_behind_starttls_is_discarded(p):
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO x")
    # One write: STARTTLS and a command that must never run inside TLS.
    c.send("STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
    code, _ = c.reply()
    assert code == 220, "STARTTLS 220"
    c.starttls()
    code, lines = c.cmd("EHLO x")
    assert code == 250 and lines[0].startswith("250-"), \
        f"first TLS reply is the EHLO's, not the injected MAIL's: {lines}"
    assert any("AUTH PLAIN LOGIN" in line for line in lines), "AUTH offered under TLS"
    assert not any("STARTTLS" in line for line in lines), "STARTTLS not offered twice"
    code, _ = c.cmd("RCPT TO:<alice@example.test>")
    assert code == 503, "the injected MAIL was not executed"
    c.close()


def test_auth_only_under_tls_refuses_wrong_passwords_and_lets_users_relay(p):
    with smtplib.SMTP("127.0.0.1", p.port, timeout=30) as s:
        s.ehlo("x")
        assert s.has_extn("starttls") and not s.has_extn("auth"), "plaintext: STARTTLS yes, AUTH no"
        code, text = s.docmd("AUTH", "PLAIN AGNhcm9sAHMzY3JldA==")
        assert code == 530 and text.startswith(b"5.7.0"), "AUTH before STARTTLS: 530 5.7.0"
        s.starttls(context=client_tls_context())
        s.ehlo("x")
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            s.login("carol", "wrong")
        assert refused.value.smtp_code == 535, "wrong password 535"
        assert s.docmd("MAIL", "FROM:<carol@client.example>")[0] == 250, "MAIL after failed AUTH"
        code, _ = s.docmd("RCPT", "TO:<friend@remote.example>")
        assert code == 554, "unauthenticated relay refused"
        s.rset()
        s.login("carol", "correct horse")
        refused = s.sendmail("carol@client.example", ["friend@remote.example"],
                             "Subject: relayed\r\n\r\nhello\r\n")
        assert refused == {}, "authenticated user may relay"


def test_received_names_tls_and_headers_are_added_for_an_authenticated_user(p):
    rows = sql(p, "SELECT encode(b.data, 'escape') FROM body_chunks b JOIN recipients r USING (message_id) "
                  "WHERE r.address = 'friend@remote.example'")
    body = "\n".join(r[0] for r in rows)
    assert "with ESMTPSA" in body and "with cipher" in body and "TLSv1." in body, f"Received: names TLS: {body[:300]}"
    assert "Message-ID: <" in body and "Date: " in body, "Message-ID and Date added for an authenticated user"


def test_auth_login_failures_end_the_session_after_max_auth_failures(p):
    c = tls_session(p)
    codes = []
    for _ in range(3):
        codes.append(c.cmd("AUTH LOGIN")[0])
        codes.append(c.cmd("Y2Fyb2w=")[0])            # carol
        codes.append(c.cmd("bm90IGl0")[0])            # "not it"
    assert codes == [334, 334, 535] * 3, f"AUTH LOGIN failures: {codes}"
    code, lines = c.reply()
    assert code == 421, f"421 after max_auth_failures: {lines}"
    assert c.closed(), "closed after too many AUTH failures"


def test_swaks_starttls_and_auth_login_relay(p):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{p.port}", "--tls", "--auth", "LOGIN", "--auth-user", "carol",
                        "--auth-password", "correct horse", "--from", "carol@client.example",
                        "--to", "other@remote.example", "--timeout", "30"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=90)
    assert r.returncode == 0 and "235 2.7.0" in r.stdout and "queued as" in r.stdout, \
        f"swaks STARTTLS + AUTH LOGIN relay: {r.stdout[-600:]}"


@pytest.fixture(scope="module")
def reloaded(p, tmp):
    """wsmtp sent SIGHUP after its certificate was replaced, with a session open
    across the reload. Yields the certificates before and after, the session and
    the configuration text before."""
    first = peer_cert(p.port)
    # A session that spans the reload must keep working.
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=30)
    s.ehlo("x")
    cert, key = make_cert(tmp)
    with open(p.config) as f:
        text = f.read()
    with open(p.config, "w") as f:
        f.write(text.replace(p.tls_cert, cert).replace(p.tls_key, key))
    p.procs["wsmtp"][-1].send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    second = first
    while second == first and time.time() < deadline:
        time.sleep(0.2)
        second = peer_cert(p.port)
    yield {"first": first, "second": second, "session": s, "text": text}
    s.close()


def test_sighup_reloads_the_certificate(reloaded):
    assert reloaded["second"] != reloaded["first"], "SIGHUP reloads the certificate"


def test_a_session_survives_the_reload(reloaded):
    assert reloaded["session"].noop()[0] == 250, "a session survives the reload"


def test_a_bad_file_is_refused_whole_and_the_running_certificate_stays(p, reloaded):
    wsmtp = p.procs["wsmtp"][-1]
    with open(p.config, "w") as f:
        f.write(reloaded["text"].replace(p.tls_cert, "/nonexistent/cert.pem"))
    wsmtp.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert wsmtp.poll() is None, "still running after a bad reload"
    assert peer_cert(p.port) == reloaded["second"], "bad reload keeps the running certificate"
    assert "reload failed" in p.log("wsmtp"), "bad reload is logged"


def test_auth_failures_add_up_per_client_address(p):
    """The per-session limit is not the only one: failures add up per client
    address across connections (max_auth_failures_per_client = 6 here; the
    earlier tests made some), and then even the right password is refused."""
    def failing_session():
        c = tls_session(p)
        return c, c.cmd("AUTH PLAIN " + base64.b64encode(b"\0carol\0wrong").decode())
    codes = []
    while len(codes) < 7 and 421 not in codes:
        c, (code, _) = failing_session()
        codes.append(code)
        if code != 421:
            c.cmd("QUIT")
    assert codes[-1] == 421 and set(codes[:-1]) <= {535} and len(codes) <= 6, \
        f"one wrong password per connection: 535 until the address is refused with 421: {codes}"
    c = tls_session(p)
    code, lines = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0carol\0correct horse").decode())
    assert code == 421 and "4.7.0" in lines[0] and "failed authentications" in lines[0], \
        f"AUTH from an address past its failures: 421 4.7.0, got {code} {lines}"
    assert c.closed(), "closed after the address-wide refusal"
    # Mail without AUTH from the same address still works (only AUTH is refused).
    with smtplib.SMTP("127.0.0.1", p.port, timeout=30) as s:
        s.sendmail("someone@client.example", ["alice@example.test"], "Subject: x\r\n\r\nbody\r\n")


