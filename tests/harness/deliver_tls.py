"""TLS peers for the relay client's tests: a throwaway certificate authority and
a server certificate made with the openssl command line in a scratch directory
(EC P-256 keys, valid for two days, subjectAltName IP:127.0.0.1 only), and a
throwaway Postfix (deliver_postfix.Postfix) whose smtpd offers STARTTLS with
that certificate and records the TLS session in its Received header. Nothing
here is trusted outside the test: the CA's key dies with its directory.
"""
import os
import subprocess

from deliver_postfix import Postfix


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_test_ca(root):
    """Creates <root>/tls/{ca.crt, relay.crt, relay.key}; returns (ca, cert, key) paths."""
    d = os.path.join(root, "tls")
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=WSMTP test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)
    _openssl("req", *ec, "-keyout", "relay.key", "-out", "relay.csr", "-subj", "/CN=relay.test", cwd=d)
    with open(os.path.join(d, "relay.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\nbasicConstraints = CA:FALSE\n")
    _openssl("x509", "-req", "-in", "relay.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "relay.crt", "-days", "2", "-extfile", "relay.ext", cwd=d)
    # smtpd reads its key after dropping to the postfix user.
    os.chmod(d, 0o755)
    for name in ("ca.crt", "relay.crt", "relay.key"):
        os.chmod(os.path.join(d, name), 0o644)
    return tuple(os.path.join(d, n) for n in ("ca.crt", "relay.crt", "relay.key"))


def tls_postfix(root, domain, users, cert, key):
    """A throwaway Postfix relay on a loopback port that offers STARTTLS (not
    required) and delivers every recipient of `domain` into its own Maildirs."""
    return Postfix(root, domain, users, extra=f"""smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
""")
