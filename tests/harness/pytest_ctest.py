"""pytest hooks that make a pytest run a good ctest test (imported by
tests/integration/e2e/conftest.py, checked by e2e_pytest_exit_codes).

ctest runs each end-to-end file as one test and reads exit code 77 as
"skipped". pytest exits 0 when every test was skipped, so a file that could not
run here (no privilege for network namespaces, no openssl) would show as
passed: pytest_sessionfinish turns "nothing passed or failed, and something was
skipped" into 77. A failure keeps pytest's own non-zero status.
"""
import pytest

SKIP_EXIT = 77
_outcomes = {"passed": 0, "failed": 0, "skipped": 0}


def _count(report):
    if report.passed and report.when == "call":
        _outcomes["passed"] += 1
    elif report.failed:
        _outcomes["failed"] += 1
    elif report.skipped:
        _outcomes["skipped"] += 1


def pytest_runtest_logreport(report):
    _count(report)


def pytest_collectreport(report):
    # A module-level pytest.skip(allow_module_level=True) is a skipped collection.
    if report.failed or report.skipped:
        _count(report)


def pytest_sessionfinish(session, exitstatus):
    nothing_ran = _outcomes["passed"] == 0 and _outcomes["failed"] == 0
    if nothing_ran and _outcomes["skipped"] > 0 and exitstatus in (pytest.ExitCode.OK,
                                                                  pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = SKIP_EXIT
