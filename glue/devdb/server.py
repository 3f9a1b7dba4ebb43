"""A throwaway PostgreSQL server started from the machine's own binaries, or else from
Debian's postgresql-15 package unpacked into a cache (see unpacked.py).

No Docker and no pre-installed service: initdb into a temporary folder, run the
postmaster on a free loopback port, stop it when the process exits. initdb and
postgres refuse to run as root, so as root the server runs as `nobody`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from glue.devdb.unpacked import BINDIR, PACKAGE, library_path, tree, unpacked_bindir

BOOTSTRAP_SUPERUSER = "supabase_admin"


class NoPostgresBinaries(RuntimeError):
    """Raised when no PostgreSQL server binaries can be found."""


SOURCES = ("auto", "unpacked")


def _source() -> str:
    source = os.environ.get("GLUE_PG_SOURCE", "auto")
    if source not in SOURCES:
        raise ValueError(f"GLUE_PG_SOURCE must be one of {', '.join(SOURCES)}, not {source!r}")
    return source


def _machine_bindirs() -> list[Path]:
    found: list[Path] = []
    if explicit := os.environ.get("GLUE_PG_BINDIR"):
        found.append(Path(explicit))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            found.append(Path(out.stdout.strip()))
    if initdb := shutil.which("initdb"):
        found.append(Path(initdb).parent)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        found.extend(v / "bin" for v in versions)
    return found


def _candidate_bindirs() -> list[Path]:
    # GLUE_PG_SOURCE=unpacked looks past the machine's own binaries, as a machine without them is.
    found = _machine_bindirs() if _source() == "auto" else []
    # Last: Debian's package unpacked into the cache (scripts/bootstrap does it when nothing above exists).
    if unpacked := unpacked_bindir():
        found.append(unpacked)
    return found


def find_bindir(candidates: list[Path] | None = None) -> Path:
    """The first folder holding both initdb and postgres."""
    for bindir in _candidate_bindirs() if candidates is None else candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    looked = f"the unpacked package in {tree() / BINDIR}"
    if _source() == "auto":
        looked = f"GLUE_PG_BINDIR, pg_config --bindir, PATH, /usr/lib/postgresql/*/bin and {looked}"
    else:
        looked = f"only {looked}, as GLUE_PG_SOURCE=unpacked says"
    raise NoPostgresBinaries(
        f"No PostgreSQL server binaries found (looked at {looked}). "
        f"On Debian, scripts/bootstrap unpacks {PACKAGE} there and says why when it cannot. "
        "Elsewhere install PostgreSQL 15 with its contrib extensions (pgcrypto, uuid-ossp), "
        "e.g. `apt-get install postgresql-15` where apt offers it, and set GLUE_PG_BINDIR to its bin folder if "
        "it is not on PATH; or point SUPABASE_DB_URL at a running `supabase start` database."
    )


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child after the uid switch (which would clear it): if the test
    # run crashes or is killed, the postmaster gets SIGINT (fast shutdown).
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGINT)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster in a temporary folder, owned by this process."""

    port: int = 0
    durable: bool = False
    bindir: Path = field(default_factory=find_bindir)
    root: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="glue-pg-"))
        self._user = self._unprivileged_user()
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        if not self.port or not port_is_free(self.port):
            self.port = free_port()
        atexit.register(self.destroy)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @staticmethod
    def _unprivileged_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        return pwd.getpwnam(os.environ.get("GLUE_PG_OS_USER", "nobody"))

    @property
    def _uid(self) -> int | None:
        return None if self._user is None else self._user.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self._user is None else self._user.pw_gid

    @property
    def _extra_groups(self) -> list[int] | None:
        return None if self._user is None else []

    @property
    def _env(self) -> dict[str, str] | None:
        # An unpacked server loads the libraries the machine lacks from beside it.
        if (libraries := library_path(self.bindir)) is None:
            return None
        return {**os.environ, "LD_LIBRARY_PATH": libraries}

    def url(self, user: str = "postgres", dbname: str = "postgres", password: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def initdb(self) -> None:
        result = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                BOOTSTRAP_SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            preexec_fn=_die_with_parent,
            cwd=self.root,
            user=self._uid,
            group=self._gid,
            extra_groups=self._extra_groups,
            env=self._env,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.strip()}")

    def start(self, timeout: float = 30.0) -> None:
        if not self.datadir.exists():
            self.initdb()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "max_connections": "300",
            "shared_buffers": "256MB",
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            "log_min_messages": "fatal",
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.datadir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with open(self.root / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,
                cwd=self.root,
                user=self._uid,
                group=self._gid,
                extra_groups=self._extra_groups,
                env=self._env,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {tail}")
            try:
                with psycopg.connect(self.url(BOOTSTRAP_SUPERUSER), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
