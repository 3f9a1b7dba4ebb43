"""Supabase Auth (GoTrue), the real server, beside the local platform.

The server is the Go module github.com/supabase/auth at one pinned commit, built once
into a cache outside the clone (`python -m glue.devdb.auth build`, which scripts/bootstrap
runs when Go is here). Its own migrations create the `auth` tables; it connects as
`supabase_auth_admin`, and its settings come from supabase/config.toml as the Supabase
CLI's local stack reads them. When the server cannot be had, the platform falls back to
`auth_standin.sql`, the two tables our triggers need, which tests/test_real_auth.py
compares with what the real migrations make.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import jwt

from glue.devdb.server import free_port

AUTH_MODULE = "github.com/supabase/auth"
# Release v2.189.0 (2026-04-28): later commits add a local `replace` to go.mod, which
# `go install module@version` refuses; its v2 tags lack the /v2 suffix, so a commit is pinned.
AUTH_COMMIT = "4fa66ba71d8c"

# The Supabase CLI's local stack signs with this well-known secret; `supabase status` prints
# keys made from it. Local use only: a hosted project has its own.
LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
LOCAL_KEY_EXPIRY = 1983812996  # the CLI's demo keys expire in 2032

UNAVAILABLE_PREFIX = "real Supabase Auth unavailable: "


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "glue" / f"auth-{AUTH_COMMIT}"


def auth_binary() -> Path | None:
    """The server binary: GLUE_AUTH_BIN when set, else the cache's build; None when neither exists."""
    if explicit := os.environ.get("GLUE_AUTH_BIN"):
        path = Path(explicit)
        return path if path.is_file() else None
    built = cache_dir() / "auth"
    return built if built.is_file() else None


def unavailable_reason() -> str:
    """Why auth_binary() is None, as the bootstrap recorded it (starts with UNAVAILABLE_PREFIX)."""
    if explicit := os.environ.get("GLUE_AUTH_BIN"):
        return f"{UNAVAILABLE_PREFIX}GLUE_AUTH_BIN={explicit} is not a file"
    recorded = cache_dir() / "unavailable.txt"
    if recorded.is_file():
        return UNAVAILABLE_PREFIX + recorded.read_text().strip()
    if shutil.which("go") is None:
        return f"{UNAVAILABLE_PREFIX}Go is not installed (needed to build {AUTH_MODULE}@{AUTH_COMMIT})"
    return f"{UNAVAILABLE_PREFIX}not built yet: run scripts/bootstrap"


def build() -> Path | None:
    """`go install` the pinned server into the cache; on failure record why and return None."""
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    binary = target / "auth"
    if binary.is_file():
        return binary
    reason_file = target / "unavailable.txt"
    go = shutil.which("go")
    if go is None:
        # Not recorded: the cache is shared by every checkout on the machine, and a shell without
        # Go on its PATH says nothing about whether the module can be had.
        return None
    result = subprocess.run(
        [go, "install", f"{AUTH_MODULE}@{AUTH_COMMIT}"],
        env={**os.environ, "GOBIN": str(target), "GOFLAGS": "-mod=mod"},
        capture_output=True,
        text=True,
    )
    if result.returncode == 0 and binary.is_file():
        reason_file.unlink(missing_ok=True)
        return binary
    said = " ".join(result.stderr.split())[-400:]
    if "403" in said or "not available" in said:
        reason = f"the Go module proxy refuses {AUTH_MODULE}@{AUTH_COMMIT} ({said})"
    else:
        reason = f"`go install {AUTH_MODULE}@{AUTH_COMMIT}` failed ({said})"
    reason_file.write_text(reason + "\n")
    return None


def api_key(role: str, secret: str = LOCAL_JWT_SECRET) -> str:
    """An API key as `supabase status` prints it: a JWT carrying only the role."""
    return jwt.encode({"iss": "supabase-demo", "role": role, "exp": LOCAL_KEY_EXPIRY}, secret, "HS256")


def load_config(path: Path | None = None) -> dict[str, Any]:
    from glue.devdb.platform import supabase_dir

    with (path or supabase_dir() / "config.toml").open("rb") as file:
        return tomllib.load(file)


def _flag(value: object) -> str:
    return "true" if value else "false"


def _env_reference(value: object) -> str:
    """config.toml's env(NAME) values are read from the environment, as the CLI reads them."""
    text = str(value)
    if text.startswith("env(") and text.endswith(")"):
        return os.environ.get(text[4:-1], "")
    return text


def test_otps(config: dict[str, Any]) -> dict[str, str]:
    """`[auth.sms.test_otp]`: number (digits, no '+') to its fixed code."""
    table = config.get("auth", {}).get("sms", {}).get("test_otp", {})
    return {str(number): str(code) for number, code in table.items()}


def _email_environment(
    email: dict[str, Any], external_url: str, smtp_port: int, limits: dict[str, Any]
) -> dict[str, str]:
    """[auth.email]: confirmations and secure change as the file says; mails to the local catcher."""
    return {
        "GOTRUE_EXTERNAL_EMAIL_ENABLED": _flag(email.get("enabled", True)),
        "GOTRUE_MAILER_AUTOCONFIRM": _flag(not email.get("enable_confirmations", False)),
        "GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED": _flag(email.get("double_confirm_changes", True)),
        "GOTRUE_SMTP_MAX_FREQUENCY": email.get("max_frequency", "1s"),
        "GOTRUE_SMTP_HOST": "127.0.0.1",
        "GOTRUE_SMTP_PORT": str(smtp_port),
        "GOTRUE_SMTP_ADMIN_EMAIL": "admin@example.com",
        "GOTRUE_SMTP_SENDER_NAME": "glue local",
        "GOTRUE_MAILER_URLPATHS_CONFIRMATION": f"{external_url}/verify",
        "GOTRUE_MAILER_URLPATHS_INVITE": f"{external_url}/verify",
        "GOTRUE_MAILER_URLPATHS_RECOVERY": f"{external_url}/verify",
        "GOTRUE_MAILER_URLPATHS_EMAIL_CHANGE": f"{external_url}/verify",
        # The CLI lifts the mail limit for its local mail catcher; so do we.
        "GOTRUE_RATE_LIMIT_EMAIL_SENT": str(limits.get("email_sent", 360000)),
    }


def _sms_environment(sms: dict[str, Any], limits: dict[str, Any], otps: dict[str, str]) -> dict[str, str]:
    """[auth.sms]: phone sign-up with confirmations as the file says, its provider and test codes."""
    env = {
        "GOTRUE_EXTERNAL_PHONE_ENABLED": _flag(sms.get("enabled", False)),
        "GOTRUE_SMS_AUTOCONFIRM": _flag(not sms.get("enable_confirmations", False)),
        "GOTRUE_SMS_TEMPLATE": sms.get("template", "Your code is {{ .Code }}"),
        "GOTRUE_SMS_MAX_FREQUENCY": sms.get("max_frequency", "5s"),
        "GOTRUE_SMS_OTP_EXP": str(sms.get("otp_expiry", 60)),
        "GOTRUE_RATE_LIMIT_SMS_SENT": str(limits.get("sms_sent", 30)),
    }
    for provider, prefix in (
        ("twilio", "GOTRUE_SMS_TWILIO_"),
        ("twilio_verify", "GOTRUE_SMS_TWILIO_VERIFY_"),
    ):
        settings = sms.get(provider, {})
        if settings.get("enabled"):
            env["GOTRUE_SMS_PROVIDER"] = provider
            for key in ("account_sid", "message_service_sid", "auth_token", "content_sid"):
                if key in settings:
                    env[prefix + key.upper()] = _env_reference(settings[key])
    if otps:
        env["GOTRUE_SMS_TEST_OTP"] = ",".join(f"{number}:{code}" for number, code in otps.items())
    return env


def auth_environment(
    config: dict[str, Any],
    database_url: str,
    port: int,
    smtp_port: int,
    secret: str = LOCAL_JWT_SECRET,
    extra_test_otps: dict[str, str] | None = None,
) -> dict[str, str]:
    """GOTRUE_* settings from config.toml, as the Supabase CLI passes them to its auth container."""
    auth = config.get("auth", {})
    limits = auth.get("rate_limit", {})
    external_url = f"http://127.0.0.1:{port}"
    return {
        "API_EXTERNAL_URL": external_url,
        "GOTRUE_API_HOST": "127.0.0.1",
        "PORT": str(port),
        "GOTRUE_DB_DRIVER": "postgres",
        "GOTRUE_DB_DATABASE_URL": database_url,
        "GOTRUE_DB_NAMESPACE": "auth",
        "GOTRUE_SITE_URL": auth.get("site_url", "http://127.0.0.1:3000"),
        "GOTRUE_URI_ALLOW_LIST": ",".join(auth.get("additional_redirect_urls", [])),
        "GOTRUE_DISABLE_SIGNUP": _flag(not auth.get("enable_signup", True)),
        "GOTRUE_JWT_SECRET": secret,
        "GOTRUE_JWT_EXP": str(auth.get("jwt_expiry", 3600)),
        "GOTRUE_JWT_AUD": "authenticated",
        "GOTRUE_JWT_DEFAULT_GROUP_NAME": "authenticated",
        "GOTRUE_JWT_ADMIN_ROLES": "service_role",
        "GOTRUE_JWT_ISSUER": f"{external_url}/auth/v1",
        "GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED": _flag(auth.get("enable_anonymous_sign_ins", False)),
        "GOTRUE_SECURITY_MANUAL_LINKING_ENABLED": _flag(auth.get("enable_manual_linking", False)),
        "GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED": _flag(
            auth.get("enable_refresh_token_rotation", True)
        ),
        "GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL": str(auth.get("refresh_token_reuse_interval", 10)),
        "GOTRUE_PASSWORD_MIN_LENGTH": str(auth.get("minimum_password_length", 6)),
        "GOTRUE_LOG_LEVEL": "warn",
        "GOTRUE_LOG_SQL": "none",
        **_email_environment(auth.get("email", {}), external_url, smtp_port, limits),
        **_sms_environment(auth.get("sms", {}), limits, {**test_otps(config), **(extra_test_otps or {})}),
    }


@dataclass
class AuthServer:
    """`auth migrate` then `auth serve` against one database, on a free loopback port."""

    binary: Path
    database_url: str  # as supabase_auth_admin
    smtp_port: int
    config: dict[str, Any] = field(default_factory=load_config)
    port: int = 0
    secret: str = LOCAL_JWT_SECRET
    extra_test_otps: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(init=False, default=None)
    _log: IO[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def anon_key(self) -> str:
        return api_key("anon", self.secret)

    @property
    def service_role_key(self) -> str:
        return api_key("service_role", self.secret)

    def environment(self) -> dict[str, str]:
        settings = auth_environment(
            self.config, self.database_url, self.port, self.smtp_port, self.secret, self.extra_test_otps
        )
        # Only PATH and the GOTRUE settings: a developer's own GOTRUE_* or DATABASE_URL must not leak in.
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **settings}

    def migrate(self) -> None:
        """GoTrue's own migrations; a no-op on a database that already has them."""
        result = subprocess.run(
            [str(self.binary), "migrate"], env=self.environment(), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"auth migrate failed: {result.stderr.strip()[-2000:]}")

    def start(self, timeout: float = 30.0) -> None:
        # A file, not a pipe: nobody reads the log while the server runs, and a full pipe would stall it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [str(self.binary), "serve"], env=self.environment(), stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"auth serve exited with {self.process.returncode}: {self.log()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"auth serve did not answer /health within {timeout}s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._log.close()

    def log(self) -> str:
        """What the server has written so far (warnings and errors, as JSON lines)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glue.devdb.auth")
    parser.add_argument("command", choices=["build", "where"])
    args = parser.parse_args(argv)
    binary = build() if args.command == "build" else auth_binary()
    if binary is None:
        print(unavailable_reason(), file=sys.stderr)
        return 1
    print(binary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
