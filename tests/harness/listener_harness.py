"""Helpers for the listener's end-to-end tests: a raw SMTP client (for what
smtplib will not send: pipelined bursts, bare LFs, BDAT), throwaway TLS
certificates made with the openssl CLI, AUTH users hashed with libsodium
(argon2id, the same crypto_pwhash_str format wsmtp verifies), and SQL
inspection of the queue through the pipeline's psql.
"""
import ctypes
import os
import socket
import ssl
import subprocess
import sys
import time

# The checks in these tests are plain asserts, which python3 -O (or PYTHONOPTIMIZE)
# strips: refuse to run rather than pass without checking anything.
if not __debug__:
    sys.exit("run the end-to-end tests without -O or PYTHONOPTIMIZE: their checks are asserts")


def make_cert(directory, name="mx.example.test"):
    """A self-signed certificate and key for name; returns (cert_path, key_path)."""
    cert = os.path.join(directory, f"{name}.{time.monotonic_ns()}.crt")
    key = cert[:-4] + ".key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def client_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test certificate is self-signed
    return ctx


_sodium = None


def hash_password(password):
    """argon2id via libsodium's crypto_pwhash_str, like common/password.cpp."""
    global _sodium
    if _sodium is None:
        _sodium = ctypes.CDLL("libsodium.so.23")
        assert _sodium.sodium_init() >= 0
    out = ctypes.create_string_buffer(128)
    pw = password.encode()
    opslimit = _sodium.crypto_pwhash_opslimit_interactive()
    _sodium.crypto_pwhash_memlimit_interactive.restype = ctypes.c_size_t
    memlimit = _sodium.crypto_pwhash_memlimit_interactive()
    rc = _sodium.crypto_pwhash_str_alg(out, pw, ctypes.c_ulonglong(len(pw)), ctypes.c_ulonglong(opslimit),
                                       ctypes.c_size_t(memlimit), ctypes.c_int(2))  # ALG_ARGON2ID13
    assert rc == 0
    return out.value.decode()


def add_auth_user(pipeline, username, password):
    h = hash_password(password)
    sql(pipeline, f"INSERT INTO auth_users (username, password_hash) VALUES ('{username}', '{h}')")


def sql(pipeline, query):
    """Rows of query as lists of strings (psql unaligned output)."""
    out = pipeline.pg.psql(query, dbname="wsmtp")
    return [line.split("|") for line in out.splitlines() if line]


class RawSmtp:
    """A line-level SMTP client that sends exactly the bytes it is given."""

    def __init__(self, port, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """One complete reply: (code, [lines])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"connection closed; got {lines!r} {self.buf!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def starttls(self):
        self.sock = client_tls_context().wrap_socket(self.sock)

    def closed(self, timeout=5):
        """True if the server closes the connection (after any pending output)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
