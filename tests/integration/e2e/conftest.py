"""pytest glue for the end-to-end tests.

ctest runs each test file as one test (tests/CMakeLists.txt) and reads exit code
77 as "skipped". pytest exits 0 when every test was skipped, so a file that could
not run here (no privilege for network namespaces, no usable systemd-analyze)
would show as passed: pytest_sessionfinish turns "nothing passed or failed, and
something was skipped" into 77.

A failing test gets the last lines of every running pipeline's daemon logs in
its report: the fixture that owns the pipeline outlives the test, so the
Pipeline's own log dump on an exception does not fire for a failed assert.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
import pipeline  # noqa: E402

SKIP_EXIT = 77
_outcomes = {"passed": 0, "failed": 0, "skipped": 0}
_log_sources = []


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


@pytest.fixture(scope="module")
def failure_logs():
    """A list the module appends (title, function returning text) to: each is shown
    in the report of a test that fails while the module runs (a peer's log)."""
    sources = []
    _log_sources.append(sources)
    yield sources
    _log_sources.remove(sources)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for p in pipeline.Pipeline.open_pipelines:
            report.sections.append((f"daemon logs ({p.root})", p.log_tails()))
        for title, text in (source for sources in _log_sources for source in sources):
            report.sections.append((title, text()))
