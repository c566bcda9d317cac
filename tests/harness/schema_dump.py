#!/usr/bin/env python3
"""The current schema as one file: schema/current.sql.

Migrates a fresh database on a throwaway PostgreSQL (pgtmp.py) with the built
`wsmtpctl db migrate`, dumps it with `pg_dump --schema-only --no-owner
--no-privileges`, and normalises the dump so that it is the same on every run:
no version header, SET lines or \\restrict keys, no "Schema: public; Owner: -"
in the object headers. pg_dump leaves out role grants and the rows of the two
state-machine tables; both are appended from the catalogs, grants summarised as
GRANT statements per object and role.

The explanations in the file are COMMENT ON statements of schema/017_comments.sql
(and later migrations), so everything in it is generated. Change the schema by
adding a migration, never by editing current.sql.

  schema_dump.py [--wsmtpctl PATH] --write schema/current.sql   regenerate
  schema_dump.py [--wsmtpctl PATH] --check schema/current.sql   exit 1 with a diff if stale
  schema_dump.py [--wsmtpctl PATH]                              print to stdout

wsmtpctl defaults to $WSMTP_BIN/ctl/wsmtpctl, else build/ctl/wsmtpctl.
"""
import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgtmp import PgServer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))

REGENERATE = ("cmake --build build --target wsmtpctl && "
              "python3 tests/harness/schema_dump.py --write schema/current.sql")


def default_wsmtpctl():
    bindir = os.environ.get("WSMTP_BIN") or os.path.join(SOURCE_DIR, "build")
    return os.path.join(bindir, "ctl", "wsmtpctl")


def header(pg_major, version):
    return f"""\
-- The current WSMTP schema: every table, index, trigger, function and
-- row-level policy after migration {version:03}, as `wsmtpctl db migrate` leaves a
-- fresh database (pg_dump --schema-only of PostgreSQL {pg_major}, normalised).
--
-- GENERATED: do not edit. A reference to read, not a script to run: databases
-- are built and upgraded only by the numbered migrations in this directory.
-- The explanations are the schema's own COMMENTs (017_comments.sql onwards).
-- Regenerate after adding a migration, from the source tree:
--   {REGENERATE}
-- The db_schema_current test fails while this file is out of date.
"""


def normalise(dump):
    out = []
    for line in dump.splitlines():
        if line.startswith(("\\restrict", "\\unrestrict", "-- Dumped from", "-- Dumped by",
                            "SET ", "SELECT pg_catalog.set_config(")):
            continue
        if line in ("-- PostgreSQL database dump", "-- PostgreSQL database dump complete"):
            continue
        # "-- Name: x; Type: TABLE; Schema: public; Owner: -" -> "-- Name: x; Type: TABLE"
        line = re.sub(r"; Schema: [^;]*; Owner: -$", "", line)
        out.append(line.rstrip())
    text = "\n".join(out)
    # The empty "--\n--\n" left where the removed banner lines were, and runs of blank lines.
    text = re.sub(r"(?m)^--\n(?:--\n)+", "", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


# Role grants, one GRANT per object and grantee, in a stable order. The owner's
# own privileges are left out; a function whose PUBLIC execute was revoked says so.
GRANTS_SQL = r"""
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = current_schema()),
privorder(p, o) AS (VALUES ('SELECT', 1), ('INSERT', 2), ('UPDATE', 3), ('DELETE', 4), ('TRUNCATE', 5),
                           ('REFERENCES', 6), ('TRIGGER', 7), ('USAGE', 8), ('CREATE', 9), ('EXECUTE', 10)),
rel AS (
    SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE '' END || c.relname AS obj,
           '' AS cols, a.grantee, a.privilege_type
    FROM pg_class c, ns, aclexplode(c.relacl) a
    WHERE c.relnamespace = ns.oid AND a.grantee <> c.relowner),
col AS (
    SELECT c.relname AS obj, string_agg(att.attname, ', ' ORDER BY att.attnum) AS cols, a.grantee,
           a.privilege_type
    FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
         JOIN pg_attribute att ON att.attrelid = c.oid AND att.attacl IS NOT NULL,
         aclexplode(att.attacl) a
    WHERE a.grantee <> c.relowner
    GROUP BY c.relname, a.grantee, a.privilege_type),
fn AS (
    SELECT 'FUNCTION ' || p.oid::regprocedure::text AS obj, '' AS cols, a.grantee, a.privilege_type
    FROM pg_proc p, ns, aclexplode(p.proacl) a
    WHERE p.pronamespace = ns.oid AND a.grantee <> p.proowner),
sch AS (
    SELECT 'SCHEMA ' || n.nspname AS obj, '' AS cols, a.grantee, a.privilege_type
    FROM pg_namespace n, ns, aclexplode(n.nspacl) a
    WHERE n.oid = ns.oid AND a.grantee <> n.nspowner),
g AS (
    SELECT obj, cols, grantee, string_agg(privilege_type, ', ' ORDER BY o) AS privs
    FROM (SELECT * FROM rel UNION ALL SELECT * FROM col UNION ALL SELECT * FROM fn UNION ALL SELECT * FROM sch) x
         JOIN privorder ON p = privilege_type
    GROUP BY obj, cols, grantee)
SELECT line FROM (
    SELECT 1 AS k, obj AS sortkey,
           'GRANT ' || privs || CASE WHEN cols <> '' THEN ' (' || cols || ')' ELSE '' END || ' ON ' || obj
           || ' TO ' || CASE WHEN grantee = 0 THEN 'PUBLIC' ELSE grantee::regrole::text END || ';' AS line,
           CASE WHEN grantee = 0 THEN '' ELSE grantee::regrole::text END AS who
    FROM g
    UNION ALL
    SELECT 1, 'FUNCTION ' || p.oid::regprocedure::text,
           'REVOKE EXECUTE ON FUNCTION ' || p.oid::regprocedure::text || ' FROM PUBLIC;', ''
    FROM pg_proc p, ns
    WHERE p.pronamespace = ns.oid AND p.proacl IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0)
    UNION ALL
    SELECT 2, d.defaclobjtype::text,
           'ALTER DEFAULT PRIVILEGES IN SCHEMA ' || current_schema() || ' GRANT '
           || string_agg(a.privilege_type, ', ' ORDER BY o) || ' ON '
           || CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                                   WHEN 'f' THEN 'FUNCTIONS' ELSE d.defaclobjtype::text END
           || ' TO ' || a.grantee::regrole::text || ';', a.grantee::regrole::text
    FROM pg_default_acl d JOIN ns ON d.defaclnamespace = ns.oid, aclexplode(d.defaclacl) a
         JOIN privorder ON p = a.privilege_type
    GROUP BY d.defaclobjtype, a.grantee
) lines
ORDER BY k, sortkey, line ~ '^REVOKE' DESC, who, line
"""

STATES_SQL = """
SELECT format('--   %s %s', state, name) FROM msg_states ORDER BY state
"""
TRANSITIONS_SQL = """
SELECT '--   ' || string_agg(format('%s -> %s', from_state, to_state), ', ' ORDER BY from_state, to_state)
FROM msg_transitions
"""


def psql_lines(pg, sql, dbname):
    out = pg.psql(sql, dbname=dbname)
    return [line for line in out.splitlines() if line]


def generate(wsmtpctl):
    if not os.access(wsmtpctl, os.X_OK):
        raise SystemExit(f"schema_dump: {wsmtpctl} not found; build it (cmake --build build --target wsmtpctl) "
                         "or pass --wsmtpctl")
    with PgServer() as pg, tempfile.TemporaryDirectory(prefix="wsmtp-schema-") as tmp:
        conninfo = pg.create_database("wsmtp")
        config = os.path.join(tmp, "wsmtp.conf")
        with open(config, "w") as f:
            f.write(f"[database]\nconninfo = {conninfo}\n")
        r = subprocess.run([wsmtpctl, "--config", config, "db", "migrate"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise SystemExit(f"schema_dump: wsmtpctl db migrate failed ({r.returncode}):\n{r.stdout}")
        dump = subprocess.run([os.path.join(pg.bindir, "pg_dump"), "--schema-only", "--no-owner",
                               "--no-privileges", "-d", conninfo],
                              check=True, stdout=subprocess.PIPE, text=True).stdout
        version = int(pg.psql("SELECT max(version) FROM schema_version", dbname="wsmtp"))
        pg_major = pg.psql("SHOW server_version_num", dbname="wsmtp")[:-4]
        grants = psql_lines(pg, GRANTS_SQL, "wsmtp")
        states = psql_lines(pg, STATES_SQL, "wsmtp")
        transitions = psql_lines(pg, TRANSITIONS_SQL, "wsmtp")
    parts = [
        header(pg_major, version),
        normalise(dump),
        "--\n-- Rows of the state machine's tables (fixed since 001)\n--\n\n-- msg_states:\n"
        + "\n".join(states) + "\n-- msg_transitions:\n" + "\n".join(transitions) + "\n",
        "--\n-- Role grants (005 and later; the roles are NOLOGIN groups, created by 005 if missing)\n--\n\n"
        + "\n".join(grants) + "\n",
    ]
    return "\n".join(parts)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wsmtpctl", default=default_wsmtpctl())
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="FILE", help="write the dump to FILE")
    mode.add_argument("--check", metavar="FILE", help="fail with a diff unless FILE equals the dump")
    args = ap.parse_args(argv)
    text = generate(args.wsmtpctl)
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)
        return 0
    if args.check:
        try:
            with open(args.check) as f:
                have = f.read()
        except FileNotFoundError:
            have = ""
        if have == text:
            print(f"{args.check} is up to date")
            return 0
        sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), text.splitlines(True),
                                                   fromfile=args.check, tofile="freshly migrated database"))
        print(f"\n{args.check} is out of date with the migrations in schema/. Regenerate it, "
              f"from the source tree:\n  {REGENERATE}\nand commit it with the migration.", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
