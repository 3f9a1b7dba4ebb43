"""The whatsapp-webhook Edge Function, tested with Deno from the npm registry (package.json pins `deno`,
scripts/bootstrap installs it with `npm ci`).

`deno test` runs the function's own tests (handler.test.ts) and the relay contract (contract.test.ts: every
case in tests/contract/cases/ against the handler, each with a fresh real database made here from the test
template). Deno fetches the function's npm imports, pinned in its deno.json and deno.lock, into .deno/
(git-ignored) on first use. Where Deno is missing the tests skip and say why; under CI=true they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from glue.devdb.provider import Cluster

ROOT = Path(__file__).resolve().parents[1]
FUNCTION = ROOT / "supabase" / "functions" / "whatsapp-webhook"
DENO = ROOT / "node_modules" / ".bin" / "deno"
CASES = sorted(p.stem for p in (ROOT / "tests" / "contract" / "cases").glob("*.json"))


def _deno_unavailable() -> str | None:
    """Why Deno cannot run here, or None when it can."""
    if not DENO.exists():
        return "Deno is not installed: run scripts/bootstrap (it runs `npm ci`, which installs the `deno` package)"
    result = subprocess.run(
        [str(DENO), "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        return f"node_modules/.bin/deno does not run on this machine: {result.stderr.strip()[:200]}"
    return None


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DENO_DIR": str(ROOT / ".deno"),  # npm packages and the type-check cache, inside the repository
        "DENO_NO_UPDATE_CHECK": "1",
        "DENO_TLS_CA_STORE": "mozilla,system",  # behind a TLS-inspecting proxy the registry's CA is the system's
        "NO_COLOR": "1",
        "RUST_BACKTRACE": "0",
        **extra,
    }


def deno(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Runs the pinned Deno in the function's folder (its deno.json and deno.lock apply)."""
    return subprocess.run(
        [str(DENO), *args],
        cwd=FUNCTION,
        env=env or _env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture(scope="module")
def deno_ready() -> None:
    """Deno is installed and the function's npm imports are in the cache (fetched once from the npm registry)."""
    reason = _deno_unavailable()
    if reason is None:
        fetched = deno(
            "install", "--frozen", "--entrypoint", "index.ts", "contract.test.ts", "handler.test.ts"
        )
        if fetched.returncode != 0:
            reason = (
                f"Deno could not fetch the function's npm packages (pinned in deno.lock):\n{report(fetched)}"
            )
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Edge Function tests, but {reason}")
        pytest.skip(reason)


@pytest.fixture
def case_databases(cluster: Cluster) -> Iterator[dict[str, str]]:
    """One fresh database (platform layer and all migrations) per contract case, by case name."""
    if cluster.admin_user is None:
        pytest.skip(
            "the contract needs a fresh database per case; SUPABASE_DB_URL points at one shared database"
        )
    names = {case: f"contract_{uuid.uuid4().hex[:10]}" for case in CASES}
    created: list[str] = []
    try:
        for name in names.values():
            cluster.clone(name)
            created.append(name)
        yield {
            case: f"postgresql://postgres:{cluster.password}@{cluster.host}:{cluster.port}/{name}"
            for case, name in names.items()
        }
    finally:
        for name in created:
            cluster.drop(name)


def test_deno_test_passes_every_contract_case_against_the_function(
    deno_ready: None, case_databases: dict[str, str]
) -> None:
    """`deno test` passes the handler's own tests and every contract case, each against its real database."""
    result = deno(
        "test",
        "--frozen",
        "--allow-env",
        "--allow-read",
        "--allow-net=127.0.0.1",
        env=_env(CONTRACT_DATABASES=json.dumps(case_databases)),
    )
    assert result.returncode == 0, report(result)
    passed = set(re.findall(r"^(\S+) \.\.\. ok", result.stdout, re.MULTILINE))
    assert sorted(set(CASES) - passed) == [], report(result)


def test_function_type_checks_and_is_lint_and_format_clean(deno_ready: None) -> None:
    """The function's entry point type-checks, and `deno lint` and `deno fmt --check` find nothing."""
    results = {
        "check": deno("check", "--frozen", "index.ts"),
        "lint": deno("lint"),
        "fmt": deno("fmt", "--check"),
    }
    failed = {name: report(result) for name, result in results.items() if result.returncode != 0}
    assert failed == {}
