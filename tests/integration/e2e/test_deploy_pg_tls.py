"""Database connections over TLS, as deploy/README.md documents them.

A throwaway PostgreSQL with ssl=on and a TLS-only pg_hba (hostssl), its server
certificate issued by a throwaway CA for 127.0.0.1 and db.wsmtp.test. wsmtpctl
connects with sslmode=verify-full and the right CA; it is refused with another
CA, with a host name the certificate does not carry, and without TLS.
"""
import os
import shutil
import subprocess
import tempfile

import deploy_hosts as dh
import pytest
from pgtmp import free_port
from pipeline import bin_dir

EXIT_DATABASE = 3  # wsmtpctl: database unreachable

if not shutil.which("openssl"):
    pytest.skip("openssl is not installed", allow_module_level=True)


def ctl(tmp, conninfo, *args):
    config = os.path.join(tmp, "ctl.conf")
    with open(config, "w") as f:
        f.write(f"[database]\nconninfo = {conninfo}\n")
    return subprocess.run([os.path.join(bin_dir(), "ctl/wsmtpctl"), "--config", config, *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)


@pytest.fixture(scope="module")
def env(failure_logs):
    """The TLS-only server, migrated, with an admin role ops; yields (tmp, server, right CA, wrong CA)."""
    # Not under pytest's own temporary directory: that is private to this user,
    # and PostgreSQL runs as another one.
    tmp = tempfile.mkdtemp(prefix="wsmtp-pgtls-")
    ca = dh.make_ca(tmp, "right CA")
    wrong_ca = dh.make_ca(tmp, "wrong CA")
    cert = dh.make_cert(tmp, ca, "db.wsmtp.test", ips=["127.0.0.1"])
    pg = dh.PgHost(tmp, "127.0.0.1", *cert, hba_networks=("127.0.0.1/32",), port=free_port())
    failure_logs.append(("PostgreSQL log", lambda: pg.log()[-3000:]))
    try:
        pg.psql("CREATE DATABASE wsmtp")
        r = ctl(tmp, pg.local_conninfo("wsmtp"), "db", "migrate")
        assert r.returncode == 0, r.stdout
        pg.psql("CREATE ROLE ops LOGIN IN ROLE wsmtp_admin")
        yield tmp, pg, ca, wrong_ca
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_verify_full_with_the_right_ca_connects_and_the_admin_role_works(env):
    tmp, pg, ca, _ = env
    good = pg.tls_conninfo("wsmtp", "ops", ca[0])
    r = ctl(tmp, good, "db", "status")
    assert r.returncode == 0, f"verify-full with the right CA: {r.stdout}"
    r = ctl(tmp, good, "domain", "add", "tls.example")
    assert r.returncode == 0, f"admin role over TLS: {r.stdout}"
    # pg_hba allows hostssl only, so these connections were TLS.


def test_a_server_certificate_from_another_ca_is_refused(env):
    tmp, pg, _, wrong_ca = env
    r = ctl(tmp, pg.tls_conninfo("wsmtp", "ops", wrong_ca[0]), "db", "status")
    assert r.returncode == EXIT_DATABASE and "certificate verify failed" in r.stdout, r.stdout


def test_a_host_name_the_certificate_does_not_name_is_refused(env):
    tmp, pg, ca, _ = env
    r = ctl(tmp, pg.tls_conninfo("wsmtp", "ops", ca[0], host="localhost"), "db", "status")
    assert r.returncode == EXIT_DATABASE and "does not match" in r.stdout, r.stdout


def test_a_connection_without_tls_is_refused_by_the_server(env):
    tmp, pg, _, _ = env
    r = ctl(tmp, f"host=127.0.0.1 port={pg.port} dbname=wsmtp user=ops sslmode=disable", "db", "status")
    assert r.returncode == EXIT_DATABASE and "no pg_hba.conf entry" in r.stdout, r.stdout
