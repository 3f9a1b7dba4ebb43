"""The benchmark's database: the embedded Supabase-shaped platform, plus a `bench` schema.

The `bench` schema holds the baselines' tables (same shape and indexes as public.users), the
RPC floors' functions (bench.pgbench.RPC_FLOORS_SQL) and the naive flow's tables.
pg_stat_statements and auto_explain are loaded for the profile phase only; measurement runs keep
pg_stat_statements.track = none so the baselines and our functions pay the same (near zero) hook cost.
"""

from __future__ import annotations

import time

import psycopg

from glue.devdb import EmbeddedPostgres, start_local_platform

# Bulk-loaded ("existing") senders are +447000000001 ... ; new senders are +1 and 14 digits.
EXISTING_BASE = 7_000_000_000
# The naive flow's tables hold the loaded senders during that phase only (load_naive_tables), so
# that their rows do not share PostgreSQL's buffers with public.users in the other measurements.
NAIVE_TABLES = ("bench.naive_users", "bench.naive_users_unique")

SETUP_SQL = """
create schema if not exists bench;

-- The bare-insert baseline: a table of the same shape, defaults, checks and unique
-- indexes as public.users (like ... including all copies all but the foreign key), and
-- load_users gives it the same rows, so that both inserts go into a table of one size.
drop table if exists bench.bare_users;
create table bench.bare_users (like public.users including all);
-- The same, kept empty: the reference for what the users table's size alone costs an insert.
drop table if exists bench.empty_users;
create table bench.empty_users (like public.users including all);

-- The naive flow's tables: without and with a unique constraint on phone_number.
drop table if exists bench.naive_users;
create table bench.naive_users (
  id uuid primary key default gen_random_uuid(),
  phone_number text,
  full_name text,
  created_at timestamptz not null default now()
);
create index naive_users_phone_number_idx on bench.naive_users (phone_number);
drop table if exists bench.naive_users_unique;
create table bench.naive_users_unique (like bench.naive_users including defaults);
alter table bench.naive_users_unique add primary key (id);
alter table bench.naive_users_unique add constraint naive_users_unique_phone_number_key unique (phone_number);
"""


def start() -> EmbeddedPostgres:
    """The platform with all migrations, no seed, not durable (see BENCHMARKS.md), profiling hooks loaded."""
    server = start_local_platform(seed=False, durable=False)
    with psycopg.connect(server.url("supabase_admin"), autocommit=True) as conn:
        conn.execute("alter system set shared_preload_libraries = 'pg_stat_statements'")
        conn.execute("alter system set max_wal_size = '4GB'")
        conn.execute("alter system set checkpoint_timeout = '30min'")
    server.restart()
    with psycopg.connect(server.url("supabase_admin"), autocommit=True) as conn:
        conn.execute("create extension if not exists pg_stat_statements with schema extensions")
        conn.execute("alter system set pg_stat_statements.track = 'none'")
        conn.execute("select pg_reload_conf()")
        conn.execute("grant all on schema extensions to postgres")
    from bench.pgbench import RPC_FLOORS_SQL  # pgbench imports this module's constants

    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(SETUP_SQL)
        conn.execute(RPC_FLOORS_SQL)
    return server


def admin(server: EmbeddedPostgres) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(server.url("supabase_admin"), autocommit=True)


def existing_users(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("select count(*) from public.users where phone_number like '+447%'").fetchone()
    assert row is not None
    return int(str(row[0]))


def load_users(server: EmbeddedPostgres, total: int) -> float:
    """Bulk-load existing senders up to `total`, each with a BSUID (as every WhatsApp message has carried
    since April 2026) and one stored message, as a live table has (one insert ... select generate_series
    per table, then vacuum analyze), and copy them into the bare-insert baseline's table; seconds taken."""
    started = time.monotonic()
    with admin(server) as conn:
        have = existing_users(conn)
        if have < total:
            conn.execute(
                """
                insert into public.users (phone_number, whatsapp_user_id, full_name, created_at, updated_at)
                select '+44' || (%s::bigint + i), 'US.' || (%s::bigint + i), 'Bench user ' || i, now(), now()
                from generate_series(%s::bigint, %s::bigint) as i
                """,
                (EXISTING_BASE, EXISTING_BASE, have + 1, total),
            )
            conn.execute(
                """
                insert into public.whatsapp_messages (message_sid, user_id, body, profile_name)
                select 'SMload' || lpad(substr(u.phone_number, 5), 28, '0'), u.id, 'Hello', u.full_name
                from public.users as u
                where u.phone_number like '+447%%' and substr(u.phone_number, 5)::bigint > %s
                """,
                (have,),
            )
            conn.execute(
                "insert into bench.bare_users select * from public.users as u"
                " where u.phone_number like '+447%%' and substr(u.phone_number, 5)::bigint > %s",
                (have,),
            )
        conn.execute("vacuum (analyze) public.users, public.whatsapp_messages, bench.bare_users")
    return time.monotonic() - started


def load_naive_tables(server: EmbeddedPostgres) -> None:
    """Copies the loaded senders into the naive flow's tables, so that its throughput compares with
    ours on tables of one size; clear_new_rows empties them again."""
    with admin(server) as conn:
        for table in NAIVE_TABLES:
            conn.execute(
                f"insert into {table} (phone_number, full_name)"
                " select u.phone_number, u.full_name from public.users as u where u.phone_number like '+447%'"
            )
        conn.execute(f"vacuum (analyze) {', '.join(NAIVE_TABLES)}")
        conn.execute("checkpoint")


def clear_new_rows(server: EmbeddedPostgres) -> None:
    """Removes what the runs created (new senders, messages, baseline rows), keeping the loaded
    senders, their messages and their copies in the baseline's table. The other tables are truncated
    and left unanalysed, so the planner never caches a plan for an empty table (a sequential scan)
    that the next run outgrows."""
    with admin(server) as conn:
        conn.execute("delete from public.whatsapp_messages where message_sid not like 'SMload%'")
        conn.execute("delete from public.users where phone_number not like '+447%'")
        conn.execute("delete from bench.bare_users where phone_number not like '+447%'")
        conn.execute(f"truncate bench.empty_users, {', '.join(NAIVE_TABLES)}")
        conn.execute("vacuum (analyze) public.users, public.whatsapp_messages, bench.bare_users")
        conn.execute("checkpoint")


def set_tracking(server: EmbeddedPostgres, track: str) -> None:
    with admin(server) as conn:
        conn.execute(f"alter system set pg_stat_statements.track = '{track}'")
        conn.execute("select pg_reload_conf()")
        conn.execute("select extensions.pg_stat_statements_reset()")
