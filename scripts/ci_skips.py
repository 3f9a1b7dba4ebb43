"""A pytest plugin for CI (`pytest -p ci_skips`, scripts/ on PYTHONPATH): lists every skipped
test with its reason and fails the run when a required suite was skipped or no test ran.

Required: the Supabase CLI and Edge Function suites, the tests marked `real_auth`, and with
--every-test-required (the run on a machine without PostgreSQL server binaries) every test.
One required skip is allowed: a real_auth test whose reason says the Go module proxy refuses
the Auth server's module, which nothing the project installs can change. A module skipped
whole while importing hides its markers, so it is held to that same rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator

import pytest

REQUIRED_FILES = ("tests/test_supabase_cli.py", "tests/test_edge_function.py")
REAL_AUTH = "real_auth"
REAL_AUTH_ALLOWED = "module proxy refuses"


class Skips:
    def __init__(self, every_test_required: bool) -> None:
        self.every_test_required = every_test_required
        self.allowed: dict[str, list[str]] = defaultdict(list)
        self.required: dict[str, list[str]] = defaultdict(list)
        self.ran = 0

    def record(self, nodeid: str, reason: str, real_auth: bool) -> None:
        if real_auth:
            required = self.every_test_required or REAL_AUTH_ALLOWED not in reason
        else:
            required = self.every_test_required or nodeid.split("::")[0] in REQUIRED_FILES
        (self.required if required else self.allowed)[reason].append(nodeid)


_KEY = pytest.StashKey[Skips]()


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--every-test-required",
        action="store_true",
        help="ci_skips: a skip of any test fails the run",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_KEY] = Skips(config.getoption("every_test_required"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    skips = item.config.stash[_KEY]
    if report.skipped and not hasattr(report, "wasxfail"):
        skips.record(report.nodeid, _reason(report), item.get_closest_marker(REAL_AUTH) is not None)
    elif report.when == "call" and not report.skipped:
        skips.ran += 1
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped:
        # A module skipped while importing never shows its markers: it is held to real_auth's rule.
        collector.config.stash[_KEY].record(report.nodeid, _reason(report), real_auth=True)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    skips = session.config.stash[_KEY]
    if (skips.required or not skips.ran) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skips = terminalreporter.config.stash[_KEY]
    write = terminalreporter.write_line
    for title, groups in (("allowed skips", skips.allowed), ("REQUIRED tests skipped", skips.required)):
        count = sum(len(nodeids) for nodeids in groups.values())
        terminalreporter.section(f"ci_skips: {title}: {count}", sep="-")
        for reason, nodeids in groups.items():
            write(f"{len(nodeids)} skipped: {reason}")
            for nodeid in nodeids:
                write(f"    {nodeid}")
    if skips.required:
        write("CI fails: a required suite was skipped (see above)", red=True, bold=True)
    if not skips.ran:
        write("CI fails: no test ran", red=True, bold=True)
