"""Three ways to get a Supabase-shaped PostgreSQL, chosen automatically.

1. SUPABASE_DB_URL: a running `supabase start` stack (platform already there; its
   migrations applied by `supabase db reset`). Tests run in that database as is.
2. A Docker engine that answers: testcontainers with Supabase's public Postgres image.
3. Otherwise: the embedded server from the machine's PostgreSQL binaries.
In cases 2 and 3 the platform layer and migrations go into a template database
that every test database is cloned from.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import psycopg
from psycopg import sql

from glue.devdb.platform import apply_migrations, create_database, install_platform, install_roles
from glue.devdb.server import EmbeddedPostgres

SUPABASE_POSTGRES_IMAGE = "supabase/postgres:15.8.1.085"
TEMPLATE = "glue_template"


@dataclass
class Cluster:
    """A reachable server; `admin_user` is None when we may not create databases from templates."""

    kind: str
    host: str
    port: int
    password: str
    admin_user: str | None
    dbname: str = "postgres"
    stop: Callable[[], None] = field(default=lambda: None)
    server: EmbeddedPostgres | None = None

    def url(self, user: str, dbname: str | None = None) -> str:
        return f"postgresql://{user}:{self.password}@{self.host}:{self.port}/{dbname or self.dbname}"

    def prepare_template(self) -> None:
        """Platform layer (unless the image has it) and migrations, into the template database."""
        assert self.admin_user is not None
        admin = self.url(self.admin_user)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(TEMPLATE)))
        if self.kind == "embedded":
            install_roles(admin)
        create_database(admin, TEMPLATE)
        if self.kind == "embedded":
            install_platform(self.url(self.admin_user, TEMPLATE))
        apply_migrations(self.url("postgres", TEMPLATE), seed=False)

    def clone(self, dbname: str) -> None:
        assert self.admin_user is not None
        create_database(self.url(self.admin_user), dbname, template=TEMPLATE)

    def drop(self, dbname: str) -> None:
        assert self.admin_user is not None
        with psycopg.connect(self.url(self.admin_user), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname)))


def _docker_answers() -> bool:
    """True when a Docker engine answers /_ping on its socket (DOCKER_HOST or the default one)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True  # a remote engine: let testcontainers try it
    path = host.removeprefix("unix://")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b"200 OK" in sock.recv(1024)
    except OSError:
        return False


def _from_supabase_db_url(url: str) -> Cluster:
    parts = urlparse(url)
    return Cluster(
        kind="supabase-start",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        password=parts.password or "postgres",
        admin_user=None,
        dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
    )


def _from_docker() -> Cluster:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer(SUPABASE_POSTGRES_IMAGE).with_env("POSTGRES_PASSWORD", "postgres")
    container.with_exposed_ports(5432)
    container.start()
    wait_for_logs(container, "database system is ready to accept connections", timeout=120)
    return Cluster(
        kind="docker",
        host=container.get_container_host_ip(),
        port=int(container.get_exposed_port(5432)),
        password="postgres",
        admin_user="supabase_admin",
        stop=container.stop,
    )


def _embedded() -> Cluster:
    server = EmbeddedPostgres()
    server.start()
    return Cluster(
        kind="embedded",
        host="127.0.0.1",
        port=server.port,
        password="postgres",
        admin_user="supabase_admin",
        stop=server.destroy,
        server=server,
    )


def provide_cluster() -> Cluster:
    if url := os.environ.get("SUPABASE_DB_URL"):
        return _from_supabase_db_url(url)
    if os.environ.get("GLUE_USE_DOCKER", "auto") != "never" and _docker_answers():
        return _from_docker()
    return _embedded()
