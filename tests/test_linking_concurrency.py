"""Linking under concurrency: real connections released together by a barrier, no deadlock, nothing lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from actors import Database, Postgrest, SupabaseAuth

Conn = psycopg.Connection[dict[str, Any]]

PHONE = "+14155550123"
DIGITS = "14155550123"
MESSAGES = 20


def confirm_phone_before_linking_existed(admin: Conn, auth_id: uuid.UUID) -> None:
    """Supabase Auth's phone confirmation with triggers off, so that only the RPC links, and the proof the
    phone-proofs migration records for a phone confirmed before it."""
    with admin.transaction():
        admin.execute("set local session_replication_role = replica")
        admin.execute(
            "update auth.users set phone = %s, phone_confirmed_at = now(), phone_change = '',"
            " phone_change_token = '', updated_at = now() where id = %s",
            (DIGITS, auth_id),
        )
        admin.execute(
            "insert into private.phone_proofs (auth_id, phone, proven_by) values (%s, %s, 'migration')",
            (auth_id, DIGITS),
        )


def race(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Runs every job on its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], Any]) -> Any:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def link_job(db: Database, auth_id: uuid.UUID, apis: list[Postgrest]) -> Callable[[], Any]:
    api = Postgrest(db)
    apis.append(api)

    def job() -> Any:
        with api.as_user(auth_id) as cur:
            row = cur.execute("select id from public.link_whatsapp_account()").fetchone()
        assert row is not None
        return row["id"]

    return job


def message_job(db: Database, sid: str, apis: list[Postgrest]) -> Callable[[], Any]:
    api = Postgrest(db)
    apis.append(api)

    def job() -> Any:
        with api.as_service() as cur:
            row = cur.execute(
                "select user_id from public.receive_whatsapp_message(%s, %s, 'race')",
                (sid, f"whatsapp:{PHONE}"),
            ).fetchone()
        assert row is not None
        return row["user_id"]

    return job


def state(sql: Conn) -> dict[str, Any]:
    return {
        "profiles": sql.execute("select id, auth_id, phone_number from public.users").fetchall(),
        "messages": sql.execute(
            "select user_id, count(*) as n from public.whatsapp_messages group by user_id"
        ).fetchall(),
        "merges": sql.execute("select survivor_id, outcome from public.user_merges").fetchall(),
    }


@pytest.mark.parametrize("path", ["rpc", "auth_trigger"], ids=["link_rpc", "phone_confirmation"])
def test_a_link_racing_twenty_inbound_messages_loses_none(
    db: Database, sql: Conn, supabase_auth: SupabaseAuth, admin: Conn, path: str
) -> None:
    """A link racing 20 inbound messages for the same phone ends with every message on the survivor and one merge."""
    first = sql.execute(
        "select user_id from public.receive_whatsapp_message('SMfirst', %s, 'hello')", (PHONE,)
    ).fetchone()
    assert first is not None
    whatsapp_id = first["user_id"]
    ada = supabase_auth.sign_up("ada@example.com")
    apis: list[Postgrest] = []
    jobs = [message_job(db, f"SMrace{i:02d}", apis) for i in range(MESSAGES)]
    if path == "rpc":
        confirm_phone_before_linking_existed(admin, ada)
        jobs.insert(MESSAGES // 2, link_job(db, ada, apis))
    else:
        jobs.insert(MESSAGES // 2, lambda: supabase_auth.confirm_phone(ada, DIGITS) or whatsapp_id)
    try:
        results = race(jobs)
    finally:
        for api in apis:
            api.close()

    assert results == [whatsapp_id] * (MESSAGES + 1)
    assert state(sql) == {
        "profiles": [{"id": whatsapp_id, "auth_id": ada, "phone_number": PHONE}],
        "messages": [{"user_id": whatsapp_id, "n": MESSAGES + 1}],
        "merges": [{"survivor_id": whatsapp_id, "outcome": "merged"}],
    }


@pytest.mark.parametrize("calls", [2, 8])
def test_link_calls_racing_merge_once(
    db: Database, sql: Conn, supabase_auth: SupabaseAuth, admin: Conn, calls: int
) -> None:
    """Concurrent link calls of one user all return the survivor, and exactly one merge happens."""
    first = sql.execute(
        "select user_id from public.receive_whatsapp_message('SMfirst', %s, 'hello')", (PHONE,)
    ).fetchone()
    assert first is not None
    whatsapp_id = first["user_id"]
    ada = supabase_auth.sign_up("ada@example.com")
    confirm_phone_before_linking_existed(admin, ada)
    apis: list[Postgrest] = []
    jobs = [link_job(db, ada, apis) for _ in range(calls)]
    try:
        results = race(jobs)
    finally:
        for api in apis:
            api.close()

    assert results == [whatsapp_id] * calls
    assert state(sql) == {
        "profiles": [{"id": whatsapp_id, "auth_id": ada, "phone_number": PHONE}],
        "messages": [{"user_id": whatsapp_id, "n": 1}],
        "merges": [{"survivor_id": whatsapp_id, "outcome": "merged"}],
    }


def test_a_link_racing_the_first_messages_of_a_new_number_ends_with_one_profile(
    db: Database, sql: Conn, supabase_auth: SupabaseAuth, admin: Conn
) -> None:
    """When the number has never written before, the link and 20 first messages settle on one linked profile."""
    ada = supabase_auth.sign_up("ada@example.com")
    confirm_phone_before_linking_existed(admin, ada)
    apis: list[Postgrest] = []
    jobs = [message_job(db, f"SMnew{i:02d}", apis) for i in range(MESSAGES)]
    jobs.insert(MESSAGES // 2, link_job(db, ada, apis))
    try:
        results = race(jobs)
    finally:
        for api in apis:
            api.close()

    survivor = sql.execute("select id from public.users where auth_id = %s", (ada,)).fetchone()
    assert survivor is not None
    assert results == [survivor["id"]] * (MESSAGES + 1)
    found = state(sql)
    assert found["profiles"] == [{"id": survivor["id"], "auth_id": ada, "phone_number": PHONE}]
    assert found["messages"] == [{"user_id": survivor["id"], "n": MESSAGES}]
    assert len(found["merges"]) == 1
    assert found["merges"][0]["survivor_id"] == survivor["id"]
    assert found["merges"][0]["outcome"] in {"merged", "phone_attached"}


def test_a_link_blocked_by_a_first_message_in_flight_merges_with_its_profile(
    db: Database, sql: Conn, supabase_auth: SupabaseAuth, admin: Conn
) -> None:
    """A link that finds no profile, then waits on an uncommitted first message of the number, merges with that profile."""
    ada = supabase_auth.sign_up("ada@example.com")
    app_id = sql.execute("select id from public.users where auth_id = %s", (ada,)).fetchone()
    assert app_id is not None
    confirm_phone_before_linking_existed(admin, ada)
    apis: list[Postgrest] = []
    link = link_job(db, ada, apis)
    with db.connect("postgres", autocommit=False) as relay:
        first = relay.execute(
            "select user_id from public.receive_whatsapp_message('SMinflight', %s, 'hello')", (PHONE,)
        ).fetchone()
        assert first is not None
        with ThreadPoolExecutor(max_workers=1) as pool:
            linked = pool.submit(link)
            deadline = time.monotonic() + 10
            while not admin.execute(
                "select exists (select from pg_stat_activity where datname = current_database()"
                " and usename = 'authenticator' and wait_event_type = 'Lock') as waiting"
            ).fetchone()["waiting"]:
                assert time.monotonic() < deadline, "the link never waited for the message's transaction"
                time.sleep(0.01)
            relay.commit()
            survivor = linked.result(timeout=10)
    for api in apis:
        api.close()

    assert survivor == first["user_id"]
    assert state(sql) == {
        "profiles": [{"id": survivor, "auth_id": ada, "phone_number": PHONE}],
        "messages": [{"user_id": survivor, "n": 1}],
        "merges": [{"survivor_id": survivor, "outcome": "merged"}],
    }
    assert sql.execute("select absorbed_id from public.user_merges").fetchall() == [
        {"absorbed_id": app_id["id"]}
    ]
