"""pytest glue for the end-to-end tests.

ctest runs each test file as one test (tests/CMakeLists.txt); the hooks from
harness/pytest_ctest.py make a file whose tests were all skipped exit 77, which
ctest reports as skipped.

A failing test gets the last lines of every running pipeline's daemon logs in
its report: the fixture that owns the pipeline outlives the test, so the
Pipeline's own log dump on an exception does not fire for a failed assert.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
import pipeline  # noqa: E402
from pytest_ctest import pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish  # noqa: E402,F401

_log_sources = []


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
