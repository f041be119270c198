"""Session fixtures (models trained once) and guards against a silently empty run.

The guards turn these into loud failures:
- zero tests collected (exit status 5, with a banner);
- a parametrisation that expanded to an empty parameter set;
- a run in which tests executed but every one of them was skipped.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Dict

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zoo  # noqa: E402

_outcomes: Counter = Counter()


class CaseCache:
    """Trains each zoo case on first use and keeps it for the session."""

    def __init__(self) -> None:
        self._cases: Dict[str, zoo.Case] = {}

    def __getitem__(self, name: str) -> zoo.Case:
        if name not in self._cases:
            self._cases[name] = zoo.BUILDERS[name]()
        return self._cases[name]


@pytest.fixture(scope="session")
def cases() -> CaseCache:
    return CaseCache()


@pytest.fixture(scope="session")
def pandas_models():
    """Models trained on DataFrames with named and category columns, per library."""
    return zoo.PandasModels()


def pytest_collection_modifyitems(session, config, items):
    empty = [
        item.nodeid
        for item in items
        for mark in item.iter_markers("skip")
        if "empty parameter set" in str(mark.kwargs.get("reason", mark.args))
    ]
    if empty:
        raise pytest.UsageError("parametrisation produced no cases for: " + ", ".join(empty))


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome == "skipped":
        _outcomes[report.outcome] += 1


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def banner(text: str) -> None:
        if reporter is not None:
            reporter.write_sep("!", text, red=True, bold=True)

    if session.testscollected == 0:
        banner("NO TESTS COLLECTED: the treelens suite did not run")
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
    elif _outcomes["skipped"] and not (_outcomes["passed"] or _outcomes["failed"]):
        banner("EVERY TEST WAS SKIPPED: nothing was checked")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
