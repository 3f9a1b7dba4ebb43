"""The `glue` command line: simulate, doctor, serve and dev, run as a person would run them."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from actors import Database
from relay_support import PHONE, TOKEN, WELCOME, RelayServer, count, deadline_poll, running_relay, twiml

from glue.cli import main
from glue.devdb.auth import auth_binary, unavailable_reason
from glue.devdb.server import free_port

GLUE = str(Path(sys.executable).with_name("glue"))
RELAY_VARIABLES = (
    "DATABASE_URL",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_AUTH_TOKEN_SECONDARY",
    "PUBLIC_BASE_URL",
    "TRUST_HOST_HEADER",
    "TRUST_FORWARDED_HEADERS",
    "WELCOME_REPLY",
    "REPLY_HOOK",
    "HOST",
    "PORT",
    "WORKERS",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No relay variables from the caller's shell, and a working directory without a .env file."""
    for name in RELAY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.fixture
def relay(db: Database) -> Iterator[RelayServer]:
    with running_relay(db.url("postgres")) as server:
        yield server


def child_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RELAY_VARIABLES}
    env.update(values)
    return env


class Lines:
    """A child process's output, read line by line in a thread so waits can have a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line)

    def close(self) -> None:
        """After the process has exited: let the reader reach end of file, then close the pipe."""
        self.thread.join(timeout=30)
        self.stream.close()
        while not self.queue.empty():
            self.seen.append(self.queue.get_nowait())

    def until(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if match := re.search(pattern, line):
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {self.seen!r}")
            try:
                self.seen.append(self.queue.get(timeout=remaining))
            except queue.Empty:
                continue


def stop(process: subprocess.Popen[str], lines: Lines) -> int:
    """Ctrl-C, as a person stops it; killed if it does not stop within 30 s."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    finally:
        lines.close()


# --- glue --version and scripts/glue -------------------------------------------------------------------

REPOSITORY = Path(__file__).resolve().parent.parent


def declared_version() -> str:
    import tomllib

    version: str = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_version_prints_the_version_pyproject_declares() -> None:
    """`glue --version` prints the installed distribution's version, which is pyproject.toml's."""
    result = run_glue("--version")
    assert (result.returncode, result.stdout) == (0, f"glue {declared_version()}\n")


def test_scripts_glue_runs_glue_from_a_shell_without_the_venv_on_its_path() -> None:
    """`scripts/glue`, the command `glue dev` prints, runs glue from the repository root with a bare PATH."""
    bare = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run(
        ["scripts/glue", "--version"],
        cwd=REPOSITORY,
        env=bare,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, f"glue {declared_version()}\n"), result.stderr


def test_dev_prints_scripts_glue_at_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """At the clone's root (where scripts/dev runs) glue dev's commands start with scripts/glue."""
    from glue.cli import glue_command

    monkeypatch.chdir(REPOSITORY)
    assert glue_command() == "scripts/glue"


# --- glue simulate -------------------------------------------------------------------------------


def test_simulate_sends_a_signed_message_and_prints_the_twiml(
    relay: RelayServer, db: Database, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`glue simulate` signs with TWILIO_AUTH_TOKEN, the relay stores the message, the TwiML is printed."""
    clean_env.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    code = main(["simulate", "--url", relay.url, "--from", PHONE, "--body", "hi", "--profile-name", "Ada"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert re.fullmatch(r"200 OK  MessageSid=SM[0-9a-f]{32}", out[0])
    assert out[1] == twiml(WELCOME)
    assert (count(db, "users"), count(db, "whatsapp_messages")) == (1, 1)


def test_simulate_with_a_repeated_sid_is_a_redelivery(
    relay: RelayServer, db: Database, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two simulate runs with the same --sid store one message and print the same welcome twice."""
    sid = "SM" + "a" * 32
    args = ["simulate", "--url", relay.url, "--from", PHONE, "--sid", sid, "--token", TOKEN]
    assert (main(args), main(args)) == (0, 0)
    out = capsys.readouterr().out.splitlines()
    assert [out[1], out[3]] == [twiml(WELCOME), twiml(WELCOME)]
    assert count(db, "whatsapp_messages") == 1


def test_simulate_with_the_wrong_token_shows_403_and_fails(
    relay: RelayServer, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token the relay does not know gets 403 printed and exit status 1."""
    code = main(["simulate", "--url", relay.url, "--from", PHONE, "--token", "wrong"])
    assert code == 1
    assert capsys.readouterr().out.splitlines()[1] == "forbidden"


def test_simulate_without_a_token_says_so(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without TWILIO_AUTH_TOKEN or --token, simulate exits 2 and says what to set."""
    assert main(["simulate", "--from", PHONE]) == 2
    assert "set TWILIO_AUTH_TOKEN" in capsys.readouterr().err


# --- glue doctor ---------------------------------------------------------------------------------


def test_doctor_passes_on_a_migrated_database(
    db: Database, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against a migrated database with a token set, every line is ok or warn and the exit status is 0."""
    clean_env.setenv("DATABASE_URL", db.url("postgres"))
    clean_env.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    clean_env.setenv("PUBLIC_BASE_URL", "https://relay.example.com")
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 0, out
    verdicts = {line.split()[1].rstrip(":"): line.split()[0] for line in out.splitlines()[:-1]}
    assert verdicts == {
        "configuration": "ok",
        "TWILIO_AUTH_TOKEN": "ok",
        "PUBLIC_BASE_URL": "ok",
        "database": "ok",
        "rpc": "ok",
        "tables": "ok",
        "migrations": "ok",
    }
    assert TOKEN not in out and ":postgres@" not in out


def test_doctor_fails_for_an_app_table_exposed_without_row_level_security(
    db: Database, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A table the app adds to public (Supabase grants it to anon) with RLS off is one FAIL line saying how to fix it."""
    with db.connect("postgres") as conn:
        conn.execute(
            "create table public.orders (id bigint generated always as identity primary key,"
            " user_id uuid not null references public.users (id) on delete cascade)"
        )
        conn.execute("create table public.settings_cache (key text primary key)")
        conn.execute("revoke all on public.settings_cache from anon, authenticated")
    clean_env.setenv("DATABASE_URL", db.url("postgres"))
    clean_env.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    clean_env.setenv("PUBLIC_BASE_URL", "https://relay.example.com")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("FAIL  ")]
    assert len(failed) == 1, out
    [line] = failed
    assert line == (
        "FAIL  tables: public.orders has row level security off and anon, authenticated may use it"
        " (it references public.users: a merge moves its rows to the merged profile);"
        " run 'alter table public.orders enable row level security;' and add policies,"
        " or 'revoke all on public.orders from anon, authenticated;'"
    )
    with db.connect("postgres") as conn:
        conn.execute("alter table public.orders enable row level security")
    assert main(["doctor"]) == 0


def test_doctor_fails_without_token_or_database(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With nothing configured, doctor names the missing token and database, and exits 1."""
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  TWILIO_AUTH_TOKEN: not set" in out
    assert "FAIL  PUBLIC_BASE_URL: not set: glue serve refuses to start" in out
    assert "FAIL  database: set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY" in out


def test_doctor_fails_when_migrations_are_not_applied(
    bare_db: Database, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a database without the migrations, the rpc line fails."""
    clean_env.setenv("DATABASE_URL", bare_db.url("postgres"))
    clean_env.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  rpc: public.receive_whatsapp_message(text, text, text, text, jsonb, text) is missing" in out


def test_doctor_reports_an_unreachable_database_without_its_password(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreachable DATABASE_URL is a FAIL line that shows the URL with its password masked."""
    port = free_port()
    clean_env.setenv("DATABASE_URL", f"postgresql://postgres:hunter2@127.0.0.1:{port}/postgres")
    clean_env.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  database: postgresql://postgres:***@127.0.0.1:{port}/postgres unreachable" in out
    assert "hunter2" not in out


# --- glue serve and glue dev, as processes -------------------------------------------------------


def test_serve_runs_the_relay_from_environment_variables(db: Database, tmp_path: Path) -> None:
    """`glue serve --port P` reads its settings from the environment, answers webhooks, and logs JSON lines."""
    port = free_port()
    env = child_env(
        DATABASE_URL=db.url("postgres"),
        TWILIO_AUTH_TOKEN=TOKEN,
        WELCOME_REPLY=WELCOME,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
    )
    process = subprocess.Popen(
        [GLUE, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = Lines(process.stderr)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=10) as client:

            def healthy() -> bool:
                try:
                    return client.get(base + "/healthz").status_code == 200
                except httpx.TransportError:
                    return process.poll() is not None

            deadline_poll(healthy, timeout=30, what="glue serve to answer /healthz")
            assert process.poll() is None
            from glue.simulate import inbound_params, send

            response = send(base + "/twilio/webhook", inbound_params(PHONE, "hi"), TOKEN)
        assert (response.status_code, response.text) == (200, twiml(WELCOME))
        match = lines.until(r'^\{.*"path":"/twilio/webhook".*\}$')
        logged = json.loads(match.string)
        assert (logged["status"], logged["user_created"], logged["duplicate"]) == (200, True, False)
    finally:
        stop(process, lines)
    assert count(db, "whatsapp_messages") == 1


def test_serve_refuses_to_start_without_a_public_url(db: Database, tmp_path: Path) -> None:
    """Without PUBLIC_BASE_URL (or an explicit TRUST_HOST_HEADER=true) `glue serve` exits 2 and says what to set."""
    env = child_env(DATABASE_URL=db.url("postgres"), TWILIO_AUTH_TOKEN=TOKEN)
    result = subprocess.run(
        [GLUE, "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Set PUBLIC_BASE_URL" in result.stderr and "TRUST_HOST_HEADER=true" in result.stderr


def start_dev(cwd: Path) -> tuple[subprocess.Popen[str], Lines]:
    """`glue dev` as a person starts it, its output read line by line."""
    process = subprocess.Popen(
        [GLUE, "dev", "--port", str(free_port())],
        cwd=cwd,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    return process, Lines(process.stdout)


def test_dev_starts_the_platform_and_relay_and_prints_a_working_simulate_command(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`glue dev` shows the seeded profiles and a simulate command that gets the welcome; Ctrl-C stops it."""
    process, lines = start_dev(tmp_path)
    try:
        lines.until(r"^  \+14155550101 +- +Amara +2 +0$")
        lines.until(r"^  \+14155550104 +dev@example.com +Dev +2 +1$")
        command = lines.until(r"TWILIO_AUTH_TOKEN=([0-9a-f]{32}) (\S+) simulate --url (\S+) ")
        lines.until(r"Uvicorn running|Application startup complete")
        token, program, url = command.groups()
        assert os.access(tmp_path / program, os.X_OK), f"{program} is not runnable from a fresh shell"
        assert main(["simulate", "--url", url, "--token", token, "--from", PHONE, "--body", "hi"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1].startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>Welcome!')
        assert out[1].endswith("<Message>You said: hi</Message></Response>")
        logged = json.loads(lines.until(r'^\{.*"path":"/twilio/webhook".*\}$').string)
        assert (logged["status"], logged["user_created"], logged["hook"]) == (200, True, "replied")
    finally:
        code = stop(process, lines)
    assert code == 0
    assert lines.seen[-1].startswith("stopped; the local database in ")
    assert not Path(lines.seen[-1].split()[5]).exists()


@pytest.mark.real_auth
def test_dev_serves_the_app_half_at_a_supabase_url(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    """`glue dev` prints SUPABASE_URL, the anon key and Auth's mails: enough to sign up, confirm the
    address with the printed code, verify a test phone and link, as README's tour does with curl."""
    if auth_binary() is None:
        pytest.skip(unavailable_reason())
    process, lines = start_dev(tmp_path)
    try:
        url = lines.until(r"^  SUPABASE_URL=(\S+)").group(1)
        key = lines.until(r"^  SUPABASE_ANON_KEY=(\S+)$").group(1)
        phone, code = lines.until(r"test phones: .*\+(14155550101) code (\d{6})").groups()
        lines.until(r"Uvicorn running|Application startup complete")
        with httpx.Client(base_url=url, headers={"apikey": key}, timeout=30) as api:
            signup = api.post(
                "/auth/v1/signup", json={"email": "ada@example.com", "password": "correct horse"}
            )
            assert signup.status_code == 200, signup.text
            mailed = lines.until(r"^\[mail\] to ada@example.com: 'Confirm Your Email'  code (\d{6})$").group(
                1
            )
            session = api.post(
                "/auth/v1/verify", json={"type": "email", "email": "ada@example.com", "token": mailed}
            )
            bearer = {"Authorization": f"Bearer {session.json()['access_token']}"}
            assert api.put("/auth/v1/user", json={"phone": phone}, headers=bearer).status_code == 200
            verified = api.post(
                "/auth/v1/verify", json={"type": "phone_change", "phone": phone, "token": code}
            )
            bearer = {"Authorization": f"Bearer {verified.json()['access_token']}"}
            profile = api.post("/rest/v1/rpc/link_whatsapp_account", json={}, headers=bearer).json()
            assert (profile["full_name"], profile["phone_number"], profile["email"]) == (
                "Amara",
                f"+{phone}",
                "ada@example.com",
            )
            history = api.get("/rest/v1/whatsapp_messages", params={"select": "body"}, headers=bearer).json()
            assert len(history) == 2
    finally:
        code = stop(process, lines)
    assert code == 0


# --- the outbox in glue dev, and glue simulate --status -------------------------------------------------

SENT_SID = "SM" + "ab" * 16
OUTBOUND_ID = "00000000-0000-4000-8000-0000000000a1"


def sent_outbound_message(db: Database) -> None:
    """One outbound message to +14155550123 that a worker has sent as SENT_SID."""
    with db.connect("postgres") as conn:
        conn.execute("select public.receive_whatsapp_message('SMin', '+14155550123', 'hi')")
        conn.execute(
            "insert into public.outbound_messages (id, user_id, to_address, content_sid, idempotency_key,"
            " status, message_sid, attempts) select %s, id, 'whatsapp:+14155550123', 'HX1', 'k', 'sent', %s, 1"
            " from public.users",
            (OUTBOUND_ID, SENT_SID),
        )


def outbound_status(database_url: str) -> list[tuple[str, str]]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("select status, message_sid from public.outbound_messages").fetchall()
    return [(str(status), str(sid)) for status, sid in rows]


def run_glue(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GLUE, *args],
        env=child_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_simulate_status_sends_a_signed_callback_that_moves_the_message(
    relay: RelayServer, db: Database, tmp_path: Path
) -> None:
    """`glue simulate --status SID --message-status read` reaches POST /twilio/status signed: 200 and the message is read."""
    sent_outbound_message(db)
    url = f"{relay.base}/twilio/status"
    result = run_glue(
        "simulate", "--url", url, "--status", SENT_SID, "--message-status", "read", TWILIO_AUTH_TOKEN=TOKEN
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"200 OK  MessageSid={SENT_SID} MessageStatus=read", "ok"]
    assert outbound_status(db.url("postgres")) == [("read", SENT_SID)]


def test_simulate_status_with_the_wrong_token_is_refused(relay: RelayServer, db: Database) -> None:
    """A status callback signed with another token shows 403, exits 1 and leaves the message sent."""
    sent_outbound_message(db)
    result = run_glue(
        "simulate", "--url", f"{relay.base}/twilio/status", "--status", SENT_SID, TWILIO_AUTH_TOKEN="f" * 32
    )
    assert (result.returncode, result.stdout.splitlines()[0]) == (
        1,
        f"403 Forbidden  MessageSid={SENT_SID} MessageStatus=delivered",
    )
    assert outbound_status(db.url("postgres")) == [("sent", SENT_SID)]


def test_simulate_needs_from_or_status(tmp_path: Path) -> None:
    """Without --from and without --status, simulate exits 2 and names both."""
    result = run_glue("simulate", "--url", "http://127.0.0.1:9/twilio/webhook", TWILIO_AUTH_TOKEN=TOKEN)
    assert result.returncode == 2
    assert "--from is required (or --status SID for a status callback)" in result.stderr


def test_dev_sends_a_queued_message_and_its_printed_command_reports_it_delivered(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """In `glue dev` a message queued as the service role is sent to the Twilio stand-in, and the printed
    `glue simulate --status` command, run as printed, makes it delivered."""
    import shlex

    import psycopg

    process, lines = start_dev(tmp_path)
    try:
        database_url = lines.until(r"^  DATABASE_URL=(\S+)$").group(1)
        queue_sql = lines.until(
            r"^  psql \S+ -c (\"set role service_role; .*send_whatsapp_message.*\")$"
        ).group(1)
        lines.until(r"Uvicorn running|Application startup complete")
        with psycopg.connect(database_url, autocommit=True) as conn:
            for statement in shlex.split(queue_sql)[0].split("; "):
                conn.execute(statement)
        sid = lines.until(r"^\[worker\] sent (SM[0-9a-f]{32}) to whatsapp:\+14155550101 ").group(1)
        command = lines.until(rf"^  (TWILIO_AUTH_TOKEN=\S+ \S+ simulate .* --status {sid} .*)$").group(1)
        assert outbound_status(database_url) == [("sent", sid)]
        assignment, program, *argv = shlex.split(command)
        assert os.access(tmp_path / program, os.X_OK), f"{program} is not runnable from a fresh shell"
        name, token = assignment.split("=", 1)
        result = run_glue(*argv, **{name: token})
        assert result.returncode == 0, result.stdout + result.stderr
        assert outbound_status(database_url) == [("delivered", sid)]
        logged = json.loads(lines.until(r'^\{.*"path":"/twilio/status".*\}$').string)
        assert (logged["status"], logged["outbound_status"]) == (200, "delivered")
    finally:
        code = stop(process, lines)
    assert code == 0
    assert not [line for line in lines.seen if line.startswith("[worker] pass failed")]
