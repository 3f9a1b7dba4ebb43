"""Supabase's platform layer and `supabase db reset`'s way of applying migrations.

The platform layer (roles, auth schema, default privileges) is what a hosted
Supabase database has before any user migration runs; the auth tables in it come from
Supabase Auth's own migrations (glue/devdb/auth.py). Migrations are then applied
as the CLI applies them: as the non-superuser `postgres`, every file in version
order, each in its own transaction, then seed.sql.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

MIGRATION_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>.+)\.sql$")


class MigrationError(RuntimeError):
    """A migration or the seed failed; nothing of that file was applied."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def supabase_dir() -> Path:
    return project_root() / "supabase"


def _sql(name: str) -> str:
    return resources.files("glue.devdb").joinpath(name).read_text()


def install_roles(admin_url: str) -> None:
    """Create the cluster-wide roles (idempotent)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(_sql("roles.sql").encode())


def create_database(admin_url: str, dbname: str, template: str = "template1") -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} owner postgres template {}").format(
                sql.Identifier(dbname), sql.Identifier(template)
            )
        )


def install_platform(admin_url: str, use_real_auth: bool | None = None) -> None:
    """Install the per-database platform layer into the database `admin_url` names, then the
    auth tables: the real Supabase Auth server's own migrations where its binary is here, else
    the stand-in (glue/devdb/auth.py says which)."""
    with psycopg.connect(admin_url) as conn:
        dbname = conn.info.dbname
        conn.execute(sql.SQL("alter database {} owner to postgres").format(sql.Identifier(dbname)))
        # As on Supabase: Auth runs `create schema if not exists auth`, which needs this.
        conn.execute(
            sql.SQL("grant create on database {} to supabase_auth_admin").format(sql.Identifier(dbname))
        )
        conn.execute(_sql("platform.sql").encode())
    install_auth_tables(_as_user(admin_url, "supabase_auth_admin"), use_real_auth)


def _as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{parts.password or 'postgres'}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def install_auth_tables(auth_admin_url: str, use_real_auth: bool | None = None) -> str:
    """Create the auth tables as supabase_auth_admin; returns "real" or "stand-in".

    With the real server's binary, `auth migrate` (its embedded migrations) makes them as on
    Supabase; without it, auth_standin.sql. GLUE_AUTH=standin forces the stand-in.
    """
    from glue.devdb.auth import AuthServer, auth_binary

    binary = auth_binary()
    if use_real_auth is None:
        use_real_auth = os.environ.get("GLUE_AUTH", "auto") != "standin"
    if use_real_auth and binary is not None:
        AuthServer(binary, auth_admin_url, smtp_port=0).migrate()
        return "real"
    with psycopg.connect(auth_admin_url, autocommit=True) as conn:
        conn.execute(_sql("auth_standin.sql").encode())
    return "stand-in"


def migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or supabase_dir() / "migrations"
    found = []
    for path in directory.glob("*.sql"):
        match = MIGRATION_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: not named <version>_<name>.sql")
        found.append(Migration(match["version"], match["name"], path))
    return sorted(found, key=lambda m: m.version)


def _run_file(conn: psycopg.Connection, path: Path, record: Migration | None = None) -> None:
    text = path.read_text()
    try:
        with conn.transaction():
            if text.strip():
                conn.execute(text.encode())
            if record is not None:
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name, statements)"
                    " values (%s, %s, array[%s])",
                    (record.version, record.name, text),
                )
    except psycopg.Error as error:
        diag = error.diag
        where = f" ({diag.context.strip()})" if diag.context else ""
        raise MigrationError(
            f"{path.name}: {diag.sqlstate} {diag.message_primary or error}{where}"
        ) from error


def apply_migrations(postgres_url: str, seed: bool = True, directory: Path | None = None) -> list[str]:
    """Apply every migration not yet applied, then seed.sql, as `postgres`; returns the versions applied."""
    applied = []
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("create schema if not exists supabase_migrations")
        conn.execute(
            "create table if not exists supabase_migrations.schema_migrations"
            " (version text primary key, statements text[], name text)"
        )
        done = {row[0] for row in conn.execute("select version from supabase_migrations.schema_migrations")}
        for migration in migrations(directory):
            if migration.version in done:
                continue
            _run_file(conn, migration.path, record=migration)
            applied.append(migration.version)
        seed_file = (directory.parent if directory else supabase_dir()) / "seed.sql"
        if seed and seed_file.exists():
            _run_file(conn, seed_file)
    return applied
