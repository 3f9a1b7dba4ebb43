"""The linters are part of the test run: sqlfluff on supabase/, ruff on the repository, mypy --strict on glue/ and bench/.

Each runs with the repository's own configuration (.sqlfluff, pyproject.toml) from
the venv that runs pytest, and a failure prints the linter's full report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LINTERS = {
    "sqlfluff lint supabase/": [sys.executable, "-m", "sqlfluff", "lint", "supabase/", "--nocolor"],
    "ruff check": [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
    "ruff format --check": [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
    "mypy --strict glue/ bench/": [sys.executable, "-m", "mypy", "--strict"],
}


@pytest.mark.parametrize("command", list(LINTERS), ids=list(LINTERS))
def test_linter_is_clean(command: str) -> None:
    """The linter finds nothing to complain about in the repository as it is."""
    result = subprocess.run(
        LINTERS[command],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
