"""CI's skip gate (scripts/ci_skips.py): every skip is listed with its reason, and a skipped
required suite fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

SKIP = "import pytest\n\ndef test_it():\n    pytest.skip({reason!r})\n"
PASS = "def test_passes():\n    pass\n"
REAL_AUTH = "import pytest\n\n@pytest.mark.real_auth\ndef test_it():\n    pytest.skip({reason!r})\n"
PROXY = "real Supabase Auth unavailable: the Go module proxy refuses github.com/supabase/auth (403)"


def run_gate(tmp_path: Path, files: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """pytest with the gate on a throwaway project holding `files`, as .ci/run calls it."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    real_auth: the real Auth server\n")
    for name, text in {"tests/test_ok.py": PASS, **files}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS), "CI": "true"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "ci_skips", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "name",
    ["tests/test_supabase_cli.py", "tests/test_edge_function.py"],
    ids=["the Supabase CLI suite", "the Edge Function suite"],
)
def test_a_skipped_required_suite_fails_the_run(tmp_path: Path, name: str) -> None:
    """A skip in a required suite fails the run, and the output names the test and its reason."""
    result = run_gate(tmp_path, {name: SKIP.format(reason="Node.js is not installed")})
    assert result.returncode == 1, result.stdout
    assert "REQUIRED tests skipped: 1" in result.stdout
    assert f"{name}::test_it" in result.stdout
    assert "Node.js is not installed" in result.stdout


def test_an_ordinary_skip_is_allowed_and_listed_with_its_reason(tmp_path: Path) -> None:
    """A skip outside the required suites passes, listed under the allowed skips with its reason."""
    result = run_gate(tmp_path, {"tests/test_relay.py": SKIP.format(reason="no Supabase stack")})
    assert result.returncode == 0, result.stdout
    assert "allowed skips: 1" in result.stdout
    assert "1 skipped: no Supabase stack" in result.stdout
    assert "tests/test_relay.py::test_it" in result.stdout


def test_real_auth_may_skip_only_because_the_module_proxy_refuses(tmp_path: Path) -> None:
    """A real_auth skip is allowed when the module proxy refuses the Auth module, and counted as such."""
    result = run_gate(tmp_path, {"tests/test_auth_real.py": REAL_AUTH.format(reason=PROXY)})
    assert result.returncode == 0, result.stdout
    assert f"1 skipped: {PROXY}" in result.stdout


def test_real_auth_skipped_for_any_other_reason_fails_the_run(tmp_path: Path) -> None:
    """A real_auth skip for a reason the project can fix (Go missing) fails the run."""
    reason = "real Supabase Auth unavailable: Go is not installed"
    result = run_gate(tmp_path, {"tests/test_auth_real.py": REAL_AUTH.format(reason=reason)})
    assert result.returncode == 1, result.stdout
    assert "REQUIRED tests skipped: 1" in result.stdout


def test_a_module_skipped_whole_fails_the_run_unless_the_module_proxy_refuses(tmp_path: Path) -> None:
    """A module skipped while importing hides its markers, so only the real_auth exception lets it pass."""
    module = "import pytest\n\npytest.skip({reason!r}, allow_module_level=True)\n"
    refused = run_gate(tmp_path, {"tests/test_auth_real.py": module.format(reason=PROXY)})
    assert refused.returncode == 0, refused.stdout
    no_go = run_gate(tmp_path, {"tests/test_auth_real.py": module.format(reason="Go is not installed")})
    assert no_go.returncode == 1, no_go.stdout
    assert "tests/test_auth_real.py" in no_go.stdout


def test_every_test_required_fails_on_any_skip(tmp_path: Path) -> None:
    """With --every-test-required (the no-Postgres run) an ordinary skip fails the run too."""
    result = run_gate(
        tmp_path, {"tests/test_relay.py": SKIP.format(reason="whatever")}, "--every-test-required"
    )
    assert result.returncode == 1, result.stdout
    assert "REQUIRED tests skipped: 1" in result.stdout


def test_a_run_where_no_test_ran_fails(tmp_path: Path) -> None:
    """A run whose every test was skipped, each skip allowed, still fails: nothing was tested."""
    result = run_gate(tmp_path, {"tests/test_ok.py": SKIP.format(reason="allowed")})
    assert result.returncode == 1, result.stdout
    assert "no test ran" in result.stdout
