"""Database connections over TLS, as deploy/README.md documents them.

A throwaway PostgreSQL with ssl=on and a TLS-only pg_hba (hostssl), its server
certificate issued by a throwaway CA for 127.0.0.1 and db.wsmtp.test. wsmtpctl
connects with sslmode=verify-full and the right CA; it is refused with another
CA, with a host name the certificate does not carry, and without TLS.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "harness"))
import deploy_hosts as dh  # noqa: E402
from pgtmp import free_port  # noqa: E402
from pipeline import bin_dir  # noqa: E402

EXIT_DATABASE = 3  # wsmtpctl: database unreachable


def ctl(tmp, conninfo, *args):
    config = os.path.join(tmp, "ctl.conf")
    with open(config, "w") as f:
        f.write(f"[database]\nconninfo = {conninfo}\n")
    return subprocess.run([os.path.join(bin_dir(), "ctl/wsmtpctl"), "--config", config, *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)


def main():
    if not shutil.which("openssl"):
        dh.skip("openssl is not installed")
    tmp = tempfile.mkdtemp(prefix="wsmtp-pgtls-")
    pg = None
    try:
        ca = dh.make_ca(tmp, "right CA")
        wrong_ca = dh.make_ca(tmp, "wrong CA")
        cert = dh.make_cert(tmp, ca, "db.wsmtp.test", ips=["127.0.0.1"])
        pg = dh.PgHost(tmp, "127.0.0.1", *cert, hba_networks=("127.0.0.1/32",), port=free_port())
        pg.psql("CREATE DATABASE wsmtp")
        owner = pg.local_conninfo("wsmtp")
        r = ctl(tmp, owner, "db", "migrate")
        assert r.returncode == 0, r.stdout
        pg.psql("CREATE ROLE ops LOGIN IN ROLE wsmtp_admin")

        good = pg.tls_conninfo("wsmtp", "ops", ca[0])
        r = ctl(tmp, good, "db", "status")
        assert r.returncode == 0, f"verify-full with the right CA: {r.stdout}"
        r = ctl(tmp, good, "domain", "add", "tls.example")
        assert r.returncode == 0, f"admin role over TLS: {r.stdout}"
        # pg_hba allows hostssl only, so these connections were TLS.
        print("ok   verify-full with the right CA connects (and the admin role works)")

        r = ctl(tmp, pg.tls_conninfo("wsmtp", "ops", wrong_ca[0]), "db", "status")
        assert r.returncode == EXIT_DATABASE and "certificate verify failed" in r.stdout, r.stdout
        print("ok   a server certificate from another CA is refused")

        r = ctl(tmp, pg.tls_conninfo("wsmtp", "ops", ca[0], host="localhost"), "db", "status")
        assert r.returncode == EXIT_DATABASE and "does not match" in r.stdout, r.stdout
        print("ok   a host name the certificate does not name is refused")

        r = ctl(tmp, f"host=127.0.0.1 port={pg.port} dbname=wsmtp user=ops sslmode=disable", "db", "status")
        assert r.returncode == EXIT_DATABASE and "no pg_hba.conf entry" in r.stdout, r.stdout
        print("ok   a connection without TLS is refused by the server")
    except AssertionError:
        if pg:
            print(pg.log()[-3000:])
        raise
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("OK")


if __name__ == "__main__":
    main()
