"""How the local platform gets the real Auth server, and what it says when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from glue.devdb import auth


def test_a_shell_without_go_records_nothing_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is shared by every checkout: a PATH without Go must not overwrite what a real attempt found."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("GLUE_AUTH_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert auth.build() is None
    assert not (auth.cache_dir() / "unavailable.txt").exists()
    assert auth.unavailable_reason() == (
        f"{auth.UNAVAILABLE_PREFIX}Go is not installed (needed to build {auth.AUTH_MODULE}@{auth.AUTH_COMMIT})"
    )
    recorded = "the Go module proxy refuses github.com/supabase/auth@4fa66ba71d8c (403 Forbidden)"
    (auth.cache_dir() / "unavailable.txt").write_text(recorded + "\n")
    assert auth.build() is None
    assert auth.unavailable_reason() == auth.UNAVAILABLE_PREFIX + recorded


def test_an_explicit_binary_wins_and_a_missing_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GLUE_AUTH_BIN points at a server built elsewhere; a path that is not a file is reported as such."""
    binary = tmp_path / "auth"
    binary.write_text("")
    monkeypatch.setenv("GLUE_AUTH_BIN", str(binary))
    assert auth.auth_binary() == binary
    monkeypatch.setenv("GLUE_AUTH_BIN", str(tmp_path / "absent"))
    assert auth.auth_binary() is None
    assert auth.unavailable_reason().endswith("is not a file")
