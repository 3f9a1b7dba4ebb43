"""The local platform looks to our migrations as a Supabase database does."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest
from actors import Database, Postgrest, SupabaseAuth

from glue.devdb.provider import Cluster


def test_embedded_server_runs_as_an_unprivileged_user_even_when_we_are_root(cluster: Cluster) -> None:
    """initdb refuses root, so as root the postmaster belongs to another OS user."""
    if cluster.server is None:
        pytest.skip(f"cluster is {cluster.kind}, not the embedded server")
    assert cluster.server.process is not None
    owner = os.stat(f"/proc/{cluster.server.process.pid}").st_uid
    assert owner != 0
    if os.geteuid() != 0:
        assert owner == os.geteuid()


def test_postgres_is_not_a_superuser(sql: psycopg.Connection[dict[str, Any]]) -> None:
    """Migrations run as postgres, which is not a superuser on Supabase."""
    row = sql.execute(
        "select rolsuper, rolbypassrls, rolcreaterole from pg_roles where rolname = 'postgres'"
    ).fetchone()
    assert row == {"rolsuper": False, "rolbypassrls": True, "rolcreaterole": True}
    assert sql.execute("select current_setting('is_superuser') as su").fetchone() == {"su": "off"}


def test_superuser_only_statements_fail_as_postgres(sql: psycopg.Connection[dict[str, Any]]) -> None:
    """A migration that needs superuser fails here as it would on Supabase."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        sql.execute("create extension if not exists file_fdw")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        sql.execute("alter table auth.users add column nickname text")


def test_new_public_function_is_executable_by_anon_unless_revoked(bare_db: Database) -> None:
    """Supabase's default privileges grant a new function in public to anon: a forgotten revoke is a hole."""
    with bare_db.connect("postgres") as conn:
        conn.execute("create function public.leaky() returns int language sql as 'select 42'")
        conn.execute("create function public.guarded() returns int language sql as 'select 7'")
        conn.execute("revoke execute on function public.guarded() from public, anon, authenticated")
    postgrest = Postgrest(bare_db)
    try:
        with postgrest.as_anon() as cur:
            assert cur.execute("select public.leaky() as v").fetchone() == {"v": 42}
        with pytest.raises(psycopg.errors.InsufficientPrivilege), postgrest.as_anon() as cur:
            cur.execute("select public.guarded()")
    finally:
        postgrest.close()


def test_new_public_table_is_writable_by_anon_until_rls_is_enabled(bare_db: Database) -> None:
    """A table with no RLS is open to anon through the default grants; RLS without policies closes it."""
    with bare_db.connect("postgres") as conn:
        conn.execute("create table public.notes (id int primary key)")
    postgrest = Postgrest(bare_db)
    try:
        with postgrest.as_anon() as cur:
            cur.execute("insert into public.notes values (1)")
        with bare_db.connect("postgres") as conn:
            conn.execute("alter table public.notes enable row level security")
        with postgrest.as_anon() as cur:
            assert cur.execute("select count(*) as n from public.notes").fetchone() == {"n": 0}
    finally:
        postgrest.close()


def test_our_migrations_deny_new_functions_to_anon_by_default(
    sql: psycopg.Connection[dict[str, Any]], postgrest: Postgrest
) -> None:
    """After our first migration, a function added later is executable by nobody until granted."""
    sql.execute("create function public.added_later() returns int language sql as 'select 1'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), postgrest.as_anon() as cur:
        cur.execute("select public.added_later()")


def test_supabase_auth_inserts_users_as_supabase_auth_admin(
    supabase_auth: SupabaseAuth, db: Database
) -> None:
    """Sign-up writes auth.users and auth.identities as supabase_auth_admin."""
    user_id = supabase_auth.sign_up("Ada@Example.com", metadata={"full_name": "Ada"})
    user = supabase_auth.user(user_id)
    assert user is not None
    assert (user["email"], user["role"], user["instance_id"].int) == ("ada@example.com", "authenticated", 0)
    with db.connect("supabase_auth_admin") as conn:
        assert conn.execute("select current_user as u").fetchone() == {"u": "supabase_auth_admin"}
        identities = conn.execute("select provider from identities where user_id = %s", (user_id,)).fetchall()
    assert identities == [{"provider": "email"}]


def test_auth_uid_is_the_callers_id_and_null_for_anon(postgrest: Postgrest) -> None:
    """auth.uid() reads request.jwt.claims as PostgREST sets it."""
    user_id = "5b1e2f34-9d7e-4b5a-8c3d-2a1f0e9d8c7b"
    with postgrest.as_user(user_id, email="a@example.com") as cur:
        row = cur.execute(
            "select auth.uid()::text as uid, auth.role() as role, current_user as who"
        ).fetchone()
    assert row == {"uid": user_id, "role": "authenticated", "who": "authenticated"}
    with postgrest.as_anon() as cur:
        assert cur.execute("select auth.uid() as uid, current_user as who").fetchone() == {
            "uid": None,
            "who": "anon",
        }


def test_anon_request_carries_its_statement_timeout(postgrest: Postgrest) -> None:
    """PostgREST applies the role's statement_timeout: 3s for anon."""
    with postgrest.as_anon() as cur:
        assert cur.execute("show statement_timeout").fetchone() == {"statement_timeout": "3s"}


def test_the_api_roles_cannot_reach_the_auth_tables(sql: psycopg.Connection[dict[str, Any]]) -> None:
    """Every auth table is closed to anon and authenticated: no privilege, or RLS with no policy."""
    rows = sql.execute(
        "select c.relname, c.relrowsecurity,"
        " (select count(*) from pg_policies p where p.schemaname = 'auth' and p.tablename = c.relname) as policies,"
        " has_table_privilege('anon', c.oid, 'select, insert, update, delete') as anon,"
        " has_table_privilege('authenticated', c.oid, 'select, insert, update, delete') as authenticated"
        " from pg_class c where c.relnamespace = 'auth'::regnamespace and c.relkind = 'r' order by 1"
    ).fetchall()
    assert {"identities", "users"} <= {row["relname"] for row in rows}
    open_to_api = [
        row
        for row in rows
        if (row["anon"] or row["authenticated"]) and not (row["relrowsecurity"] and not row["policies"])
    ]
    assert open_to_api == []
