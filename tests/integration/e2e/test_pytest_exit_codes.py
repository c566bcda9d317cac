"""The exit codes ctest sees from pytest (tests/harness/pytest_ctest.py): 77 when
every test of a file was skipped, by a fixture or at module level; 0 when
something passed, skips or not; non-zero when anything failed or errored, even
next to skips. Each case is a small test file run by its own pytest.
"""
import os
import subprocess
import sys

import pytest

HARNESS = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
CONFTEST = f"""import sys
sys.path.insert(0, {HARNESS!r})
from pytest_ctest import pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish
"""

CASES = {
    "skipped_by_a_fixture": ("""import pytest
@pytest.fixture(scope="module")
def host():
    pytest.skip("no host here")
def test_a(host): pass
def test_b(host): pass
""", 77),
    "skipped_at_module_level": ("""import pytest
pytest.skip("no namespaces here", allow_module_level=True)
def test_a(): pass
""", 77),
    "passed_and_skipped": ("""import pytest
def test_a(): pass
def test_b(): pytest.skip("not here")
""", 0),
    "failed_and_skipped": ("""import pytest
def test_a(): assert 1 == 2
def test_b(): pytest.skip("not here")
""", 1),
    "fixture_error_and_skipped": ("""import pytest
@pytest.fixture
def broken(): raise RuntimeError("set-up failed")
def test_a(broken): pass
def test_b(): pytest.skip("not here")
""", 1),
    "import_error": ("""import no_such_module_anywhere
def test_a(): pass
""", 2),
}


@pytest.mark.parametrize("case", CASES)
def test_exit_code(tmp_path, case):
    source, expected = CASES[case]
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / f"test_{case}.py").write_text(source)
    # --confcutdir: a conftest.py left in a parent such as /tmp must not be loaded.
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        "--confcutdir", str(tmp_path),
                        str(tmp_path / f"test_{case}.py")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == expected, r.stdout
