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


def test_the_servers_settings_come_from_config_toml() -> None:
    """The settings the guarantees rest on reach the server as the CLI passes them: phone and email
    confirmations on, the plain Twilio provider with its template, the code's lifetime, the test codes."""
    env = auth.auth_environment(auth.load_config(), "postgresql://x", port=9999, smtp_port=2525)
    assert (env["GOTRUE_SMS_AUTOCONFIRM"], env["GOTRUE_MAILER_AUTOCONFIRM"]) == ("false", "false")
    assert env["GOTRUE_SMS_PROVIDER"] == "twilio"
    assert "GOTRUE_SMS_TWILIO_CONTENT_SID" in env and "GOTRUE_SMS_TWILIO_VERIFY_ACCOUNT_SID" not in env
    assert env["GOTRUE_SMS_OTP_EXP"] == "600"
    assert env["GOTRUE_SMS_TEST_OTP"] == "14155550100:123456,14155550101:654321"
    assert env["GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED"] == "false"
    assert env["GOTRUE_SMTP_PORT"] == "2525"
