"""Supabase's own CLI accepts this repository: db reset, db advisors and gen types.

The CLI (pinned in package.json, installed by scripts/bootstrap with `npm ci`) runs
against a database of its own on the embedded platform, created from template1 with
the platform layer only, as a new hosted project is. The shared test template is
never touched: the CLI's reset drops schemas and truncates auth tables.

Regenerate the committed types after a migration changes the API:
    GLUE_UPDATE_TYPES=1 scripts/test tests/test_supabase_cli.py
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from actors import Database

from glue.devdb.platform import create_database, install_platform, migrations
from glue.devdb.provider import Cluster

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "node_modules" / ".bin" / "supabase"
GENERATED_TYPES = {
    "typescript": ROOT / "supabase" / "types" / "database.ts",
    "python": ROOT / "supabase" / "types" / "database.py",
}
UPDATE_TYPES = os.environ.get("GLUE_UPDATE_TYPES") == "1"

Run = Callable[..., subprocess.CompletedProcess[str]]


def _cli_unavailable() -> str | None:
    """Why the CLI cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "Node.js is not installed; the Supabase CLI needs Node >= 20 (then run scripts/bootstrap)"
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    match = re.match(r"v(\d+)\.", version)
    if match is None or int(match[1]) < 20:
        return f"Node.js {version or '(unknown version)'} is too old; the Supabase CLI needs Node >= 20"
    if not CLI.exists():
        return "the Supabase CLI is not installed: run scripts/bootstrap (it runs `npm ci`)"
    return None


@pytest.fixture(scope="module")
def supabase() -> Run:
    """Runs the pinned Supabase CLI on this repository, without a terminal, as CI does."""
    if reason := _cli_unavailable():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Supabase CLI tests, but {reason}")
        pytest.skip(reason)
    env = {
        **os.environ,
        "DO_NOT_TRACK": "1",  # no telemetry from test runs
        "SUPABASE_NO_UPDATE_NOTIFIER": "1",
        "PGSSLMODE": "disable",  # the embedded server has no TLS; say so instead of being warned
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(CLI), *args, "--workdir", str(ROOT)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"supabase {' '.join(args)} exited with {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    return run


@pytest.fixture(scope="module")
def cli_db(cluster: Cluster, supabase: Run) -> Iterator[Database]:
    """A database with the platform layer only, then `supabase db reset` once."""
    if cluster.kind != "embedded" or cluster.admin_user is None:
        pytest.skip(f"the CLI tests run on the embedded platform; this run uses {cluster.kind}")
    name = f"supabase_cli_{uuid.uuid4().hex[:8]}"
    create_database(cluster.url(cluster.admin_user), name)
    try:
        install_platform(cluster.url(cluster.admin_user, name))
        db = Database(cluster.host, cluster.port, name, cluster.password)
        supabase("db", "reset", f"--remote={db.url('postgres')}", "--yes")
        yield db
    finally:
        cluster.drop(name)


# What the platform layer and our migrations put in the catalog: ownership, grants,
# RLS, policies, triggers and default privileges, outside the CLI's own bookkeeping.
CATALOG_SNAPSHOT = """
with schemas as (
  select oid, nspname from pg_namespace
  where nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'supabase_migrations')
    and nspname not like 'pg_temp%' and nspname not like 'pg_toast_temp%'
)
select 'schema' as kind, nspname as name,
       jsonb_build_object('owner', pg_get_userbyid(n.nspowner), 'acl', n.nspacl::text[]) as facts
from pg_namespace as n where n.oid in (select oid from schemas)
union all
select 'relation', s.nspname || '.' || c.relname,
       jsonb_build_object('kind', c.relkind, 'owner', pg_get_userbyid(c.relowner),
                          'acl', c.relacl::text[], 'rls', c.relrowsecurity)
from pg_class as c join schemas as s on s.oid = c.relnamespace
union all
select 'function', p.oid::regprocedure::text,
       jsonb_build_object('owner', pg_get_userbyid(p.proowner), 'acl', p.proacl::text[],
                          'definer', p.prosecdef, 'config', p.proconfig)
from pg_proc as p join schemas as s on s.oid = p.pronamespace
union all
select 'policy', schemaname || '.' || tablename || ': ' || policyname,
       jsonb_build_object('cmd', cmd, 'roles', roles, 'qual', qual, 'check', with_check)
from pg_policies
union all
select 'trigger', t.tgrelid::regclass::text || ': ' || t.tgname,
       jsonb_build_object('function', t.tgfoid::regprocedure::text, 'enabled', t.tgenabled)
from pg_trigger as t where not t.tgisinternal
union all
select 'default privileges',
       pg_get_userbyid(d.defaclrole) || ' in ' || coalesce(d.defaclnamespace::regnamespace::text, '*')
       || ' on ' || d.defaclobjtype::text,
       jsonb_build_object('acl', d.defaclacl::text[])
from pg_default_acl as d
union all
select 'extension', e.extname, jsonb_build_object('schema', e.extnamespace::regnamespace::text)
from pg_extension as e
order by 1, 2
"""


def _catalog(db: Database) -> dict[str, Any]:
    with db.connect("supabase_admin") as conn:
        rows = conn.execute(CATALOG_SNAPSHOT).fetchall()
    return {f"{row['kind']} {row['name']}": row["facts"] for row in rows}


def test_cli_reads_config_toml_without_complaint(cli_db: Database, supabase: Run) -> None:
    """The CLI loads supabase/config.toml with no error and no warning (it warns on unknown keys)."""
    result = supabase("migration", "list", f"--remote={cli_db.url('postgres')}")
    complaints = [line for line in result.stderr.splitlines() if "config" in line.lower()]
    assert complaints == [], result.stderr
    for migration in migrations():
        assert migration.version in result.stdout, result.stdout


def test_db_reset_applies_every_migration_and_the_seed_twice_in_a_row(
    cli_db: Database, supabase: Run
) -> None:
    """A second `supabase db reset` of the same database succeeds and records every migration."""
    result = supabase("db", "reset", f"--remote={cli_db.url('postgres')}", "--yes")
    log = result.stdout + result.stderr
    files = migrations()
    for migration in files:
        assert f"Applying migration {migration.path.name}" in log, log
    if (ROOT / "supabase" / "seed.sql").exists():
        assert "Seeding data from supabase/seed.sql" in log, log
    with cli_db.connect("postgres") as conn:
        recorded = [
            row["version"]
            for row in conn.execute(
                "select version from supabase_migrations.schema_migrations order by version"
            )
        ]
    assert recorded == [m.version for m in files]


def test_db_reset_builds_the_same_catalog_as_our_migration_runner(cli_db: Database, db: Database) -> None:
    """The CLI's reset and glue's runner leave the same owners, grants, RLS, policies and triggers."""
    ours, theirs = _catalog(db), _catalog(cli_db)
    differences = [
        f"{key}:\n  glue's runner: {ours.get(key)}\n  supabase db reset: {theirs.get(key)}"
        for key in sorted(ours.keys() | theirs.keys())
        if ours.get(key) != theirs.get(key)
    ]
    assert not differences, "\n".join(differences)


def test_db_reset_keeps_the_platform_layer(cli_db: Database) -> None:
    """After the CLI's reset the auth schema, its tables and functions, and extensions are still there."""
    with cli_db.connect("postgres") as conn:
        row = conn.execute(
            """
            select pg_get_userbyid(n.nspowner) as auth_owner,
                   to_regclass('auth.users') is not null as has_users,
                   to_regprocedure('auth.uid()') is not null as has_uid,
                   (select extnamespace::regnamespace::text from pg_extension where extname = 'pgcrypto')
                     as pgcrypto_schema
            from pg_namespace as n where n.nspname = 'auth'
            """
        ).fetchone()
    assert row == {
        "auth_owner": "supabase_admin",
        "has_users": True,
        "has_uid": True,
        "pgcrypto_schema": "extensions",
    }


def test_advisors_find_nothing_at_warn_or_error(cli_db: Database, supabase: Run) -> None:
    """Supabase's security and performance advisors report at most info-level findings."""
    result = supabase(
        "db",
        "advisors",
        f"--remote={cli_db.url('postgres')}",
        "--type",
        "all",
        "--level",
        "info",
        "--fail-on",
        "none",
        "--output-format",
        "json",
    )
    findings = json.loads(result.stdout).get("results") or []

    def describe(finding: dict[str, Any]) -> str:
        return (
            f"{finding['level']} {finding['name']} ({', '.join(finding.get('categories', []))}): "
            f"{finding['detail']}\n    {finding.get('remediation', '')}"
        )

    for finding in findings:
        if finding["level"] == "INFO":
            print("advisor info:", describe(finding))  # listed in docs/contributing.md with why each stays
    serious = [describe(f) for f in findings if f["level"] != "INFO"]
    assert not serious, "Supabase advisors found:\n" + "\n".join(serious)


AUTH_ENUM = re.compile(r"^Auth\w+: TypeAlias = .*\n", re.MULTILINE)


def without_auth_enums(types: str) -> str:
    """The Python generator lists every schema's enums; Auth's come with its version, not with our
    migrations (the real server's tables have them, the stand-in's do not), so they are left out."""
    return re.sub(r"\n{3,}", "\n\n", AUTH_ENUM.sub("", types))


@pytest.mark.parametrize("lang", sorted(GENERATED_TYPES))
def test_generated_types_are_current(cli_db: Database, supabase: Run, lang: str) -> None:
    """The committed client types equal what `supabase gen types` makes from the migrations now."""
    result = supabase("gen", "types", "--lang", lang, f"--remote={cli_db.url('postgres')}")
    fresh = without_auth_enums(result.stdout)
    assert fresh.strip(), f"supabase gen types --lang {lang} printed nothing\n{result.stderr}"
    path = GENERATED_TYPES[lang]
    if UPDATE_TYPES:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fresh)
    committed = path.read_text() if path.exists() else ""
    if committed != fresh:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                fresh.splitlines(keepends=True),
                f"{path.relative_to(ROOT)} (committed)",
                "supabase gen types (now)",
            )
        )
        pytest.fail(
            f"{path.relative_to(ROOT)} is stale; regenerate with "
            f"`GLUE_UPDATE_TYPES=1 scripts/test tests/test_supabase_cli.py`\n{diff[:6000]}"
        )


def test_generated_python_types_read_a_profile_row(cli_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed pydantic models validate a real public.users row from the database."""
    spec = importlib.util.spec_from_file_location("database_types", GENERATED_TYPES["python"])
    assert spec is not None and spec.loader is not None
    db_types = importlib.util.module_from_spec(spec)
    # pydantic resolves the models' annotations through sys.modules, so the module must be there.
    monkeypatch.setitem(sys.modules, spec.name, db_types)
    spec.loader.exec_module(db_types)

    with cli_db.connect("postgres") as conn:
        conn.execute("insert into public.users (phone_number, full_name) values ('+14155550123', 'Ana')")
        row = conn.execute("select * from public.users where phone_number = '+14155550123'").fetchone()
        conn.execute("delete from public.users where phone_number = '+14155550123'")
    assert row is not None
    profile = db_types.PublicUsers.model_validate(row)
    assert (profile.phone_number, profile.full_name, profile.auth_id) == ("+14155550123", "Ana", None)
