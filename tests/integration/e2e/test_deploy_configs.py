"""The shipped deployment files: example configurations and systemd units.

- Every example in deploy/examples passes --check-config of each daemon that
  runs on that host (TLS paths pointed at a throwaway certificate).
- wsmtp.conf, the reference, documents every key each program reads (taken from
  the config.cpp files, so a key added later without documentation fails here).
- Each systemd unit has the required hardening, and `systemd-analyze verify`
  accepts it. Where systemd-analyze is missing or cannot run, every other check
  still runs, and that check is marked skipped (not passed), naming the reason.
- A daemon whose unit reloads with SIGHUP survives SIGHUP.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import time

import deploy_hosts as dh
import pytest
from pgtmp import free_port
from pipeline import bin_dir

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BINARIES = {"wsmtp": "listener/wsmtp", "wroute": "router/wroute", "wdeliver": "deliver/wdeliver",
            "wreaper": "reaper/wreaper"}
# Which daemons run with which example.
EXAMPLES = {
    "wsmtp.conf": ["wsmtp", "wroute", "wdeliver", "wreaper"],
    "mx.conf": ["wsmtp"],
    "router.conf": ["wroute", "wreaper"],
    "mailbox.conf": ["wdeliver"],
    "relay.conf": ["wdeliver"],
}
# Where each section's keys are read.
KEY_SOURCES = {
    "database": ("common/config/common_config.cpp", "database"),
    "queue": ("common/config/common_config.cpp", "queue"),
    "listener": ("listener/config.cpp", "listener"),
    "router": (("router/config.cpp", "common/config/worker_scaling.cpp"), "router"),
    "deliver": (("deliver/config.cpp", "common/config/worker_scaling.cpp"), "deliver"),
    "reaper": ("common/reap/reaper_config.cpp", "reaper"),
}
UNIT_REQUIRED = ["Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "PrivateTmp=yes", "ConditionPathExists=/etc/wsmtp/wsmtp.conf"]
# Each daemon its own user and credential (test_deploy_privileges runs them so).
UNIT_USER = {"wsmtp.service": "wsmtp", "wroute.service": "wroute", "wdeliver.service": "wdeliver",
             "wreaper.service": "wreaper"}

def binary(daemon):
    return os.path.join(bin_dir(), BINARIES[daemon])


def keys_read(source, section):
    """Keys a config.cpp reads for one section. A file that reads one section
    owns all its get_*("key", ...) calls (helpers may come before the reader is
    declared); in a file with several, a key belongs to the SectionReader
    declared last before it; a file that declares none (a helper such as
    worker_scaling.cpp, given the reader) reads all its keys for the section.
    source may be a tuple of such files."""
    if isinstance(source, tuple):
        return set().union(*(keys_read(s, section) for s in source))
    with open(os.path.join(ROOT, source)) as f:
        text = f.read()
    sections = set(re.findall(r'SectionReader\s+\w+\(\s*\w+\s*,\s*"(\w+)"\s*\)', text))
    keys, current = set(), None
    # s.get_int("key", ...) and helpers that take the reader: read_mode(s, "key", ...).
    pattern = r'SectionReader\s+\w+\(\s*\w+\s*,\s*"(\w+)"\s*\)|(?:\.get_\w+\(|\b\w+\(\s*s\s*,)\s*"(\w+)"'
    for m in re.finditer(pattern, text):
        if m.group(1):
            current = m.group(1)
        elif current == section or sections == {section} or not sections:
            keys.add(m.group(2))
    return keys


def documented_keys(path):
    """section -> keys present in the file, set or commented out as '# key = ...'."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            m = re.match(r"^\[(\w+)\]", line)
            if m:
                section = m.group(1)
                out.setdefault(section, set())
                continue
            m = re.match(r"^#?\s*(\w+)\s*=", line)
            if m and section:
                out[section].add(m.group(1))
    return out


UNITS = sorted(glob.glob(os.path.join(ROOT, "deploy", "systemd", "*.service")))


def unit_text(name):
    with open(os.path.join(ROOT, "deploy", "systemd", name)) as f:
        return f.read()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return str(tmp_path_factory.mktemp("wsmtp-deploy-cfg-"))


@pytest.fixture(scope="module")
def examples(tmp):
    """Each example written with its TLS paths pointed at a throwaway certificate: name -> path."""
    ca = dh.make_ca(tmp)
    cert = dh.make_cert(tmp, ca, "mx.example.net")
    paths = {}
    for name in EXAMPLES:
        text = dh.example_config(name, {})
        # Certificates named in the examples do not exist here: use the throwaway one.
        text = re.sub(r"^tls_cert_file = .*$", f"tls_cert_file = {cert[0]}", text, flags=re.M)
        text = re.sub(r"^tls_key_file = .*$", f"tls_key_file = {cert[1]}", text, flags=re.M)
        paths[name] = os.path.join(tmp, name)
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


@pytest.mark.parametrize("name, daemon", [(n, d) for n, ds in EXAMPLES.items() for d in ds])
def test_every_example_passes_check_config_of_its_daemons(examples, name, daemon):
    r = subprocess.run([binary(daemon), "--config", examples[name], "--check-config"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, f"{daemon} --check-config {name} {r.stdout.strip()}"


def test_a_misspelt_key_is_refused(examples, tmp):
    # A typo must not pass: the MX example with a misspelt key is refused.
    path = os.path.join(tmp, "mx-typo.conf")
    with open(examples["mx.conf"]) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text + "max_conections = 10\n")
    r = subprocess.run([binary("wsmtp"), "--config", path, "--check-config"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode != 0 and "max_conections" in r.stdout, "a misspelt key is refused"


@pytest.mark.parametrize("section", KEY_SOURCES)
def test_reference_documents_every_key(section):
    documented = documented_keys(os.path.join(ROOT, "deploy", "examples", "wsmtp.conf"))
    source, name = KEY_SOURCES[section]
    keys = keys_read(source, name)
    assert bool(keys), f"found the keys of [{section}] in {source}"
    missing = sorted(keys - documented.get(section, set()))
    assert not missing, f"wsmtp.conf documents every key of [{section}] (missing: {missing})"


def test_one_unit_per_daemon():
    assert [os.path.basename(u) for u in UNITS] == ["wdeliver.service", "wreaper.service", "wroute.service",
                                                    "wsmtp.service"], "one unit per daemon"


@pytest.mark.parametrize("name", [os.path.basename(u) for u in UNITS])
def test_unit_has_the_required_hardening(name):
    text = unit_text(name)
    for line in UNIT_REQUIRED + [f"User={UNIT_USER[name]}",
                                 f"LoadCredential=pgpass:/etc/wsmtp/credentials/{name[:-8]}.pgpass",
                                 "Environment=PGPASSFILE=%d/pgpass"]:
        assert re.search(rf"^{re.escape(line)}$", text, re.M) is not None, f"{name}: {line}"
    caps = re.findall(r"^AmbientCapabilities=(.*)$", text, re.M)
    want = {"wsmtp.service": ["CAP_NET_BIND_SERVICE"], "wdeliver.service": ["CAP_SETUID CAP_SETGID"]}.get(name, [])
    assert caps == want, f"{name}: ambient capabilities {caps}"


def test_wsmtp_service_reloads_with_sighup():
    # The listener reloads its limits and TLS certificate on SIGHUP.
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit_text("wsmtp.service"), "wsmtp.service reloads with SIGHUP"


@pytest.mark.parametrize("unit", UNITS, ids=os.path.basename)
def test_systemd_analyze_verify_accepts_the_unit(tmp, unit):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    # verify wants the ExecStart binaries to exist: point the units at the build.
    with open(unit) as f:
        text = f.read()
    for daemon, rel in BINARIES.items():
        text = text.replace(f"/usr/sbin/{daemon} ", f"{os.path.join(bin_dir(), rel)} ")
    path = os.path.join(tmp, os.path.basename(unit))
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([analyze, "verify", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=60)
    out = r.stdout.strip()
    if r.returncode != 0 and re.search(r"System has not been booted with systemd|Failed to (connect|initialize)|"
                                       r"Failed to setup working directory|not booted", out):
        pytest.skip(f"systemd-analyze verify did not run ({out.splitlines()[-1] if out else 'unavailable'})")
    # Ignore complaints about the example paths that do not exist on this machine.
    problems = [l for l in out.splitlines() if l and "ConditionPathExists" not in l
                and "/etc/wsmtp" not in l and "Unknown key name" not in l]
    assert r.returncode == 0 and not problems, f"systemd-analyze verify {os.path.basename(unit)}: {out}"


@pytest.mark.parametrize("daemon", [d for d in BINARIES
                                    if "ExecReload=/bin/kill -HUP $MAINPID" in unit_text(f"{d}.service")])
def test_daemon_whose_unit_reloads_with_sighup_survives_sighup(tmp, daemon):
    config = os.path.join(tmp, "hup.conf")
    with open(config, "w") as f:
        # An unreachable database: the daemons wait for it, which is enough here.
        f.write(f"[database]\nconninfo = host=127.0.0.1 port={free_port()} dbname=none connect_timeout=1\n\n"
                f"[listener]\nlisten = 127.0.0.1:{free_port()}\nhostname = mx.example.net\n")
    p = subprocess.Popen([binary(daemon), "--config", config], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(1.5)
        started = p.poll() is None
        if started:
            p.send_signal(signal.SIGHUP)
            time.sleep(1.5)
        assert started and p.poll() is None, f"{daemon} survives SIGHUP (systemctl reload)"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
