"""What anon, two authenticated users and the service role can do, through PostgREST's eyes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from actors import Postgrest, SupabaseAuth

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def people(sql: Conn, supabase_auth: SupabaseAuth) -> dict[str, Any]:
    """Alice and Bob signed up in the app; Carol only writes on WhatsApp; each has one message."""
    alice = supabase_auth.sign_up("alice@example.com", metadata={"full_name": "Alice"})
    bob = supabase_auth.sign_up("bob@example.com", metadata={"full_name": "Bob"})
    sql.execute("update public.users set phone_number = '+14155550101' where auth_id = %s", (alice,))
    sql.execute("update public.users set phone_number = '+14155550102' where auth_id = %s", (bob,))
    for sid, phone in [("SMa", "+14155550101"), ("SMb", "+14155550102"), ("SMc", "+14155550103")]:
        sql.execute("select public.receive_whatsapp_message(%s, %s, 'hi')", (sid, phone))
    ids = {r["phone_number"]: r["id"] for r in sql.execute("select id, phone_number from public.users")}
    return {
        "alice": alice,
        "bob": bob,
        "alice_profile": ids["+14155550101"],
        "bob_profile": ids["+14155550102"],
        "carol_profile": ids["+14155550103"],
    }


def test_a_user_reads_only_their_own_profile(postgrest: Postgrest, people: dict[str, Any]) -> None:
    """Alice sees her profile and nobody else's."""
    with postgrest.as_user(people["alice"]) as cur:
        rows = cur.execute("select id, full_name from public.users").fetchall()
    assert rows == [{"id": people["alice_profile"], "full_name": "Alice"}]


def test_a_user_reads_only_their_own_messages(postgrest: Postgrest, people: dict[str, Any]) -> None:
    """Alice sees her message and nobody else's."""
    with postgrest.as_user(people["alice"]) as cur:
        rows = cur.execute("select message_sid from public.whatsapp_messages").fetchall()
    assert rows == [{"message_sid": "SMa"}]


def test_a_user_renames_themselves(postgrest: Postgrest, people: dict[str, Any], sql: Conn) -> None:
    """full_name is the one column a user may change on their own profile."""
    with postgrest.as_user(people["alice"]) as cur:
        cur.execute(
            "update public.users set full_name = 'Alice L.' where id = %s", (people["alice_profile"],)
        )
        assert cur.rowcount == 1
    assert sql.execute(
        "select full_name from public.users where id = %s", (people["alice_profile"],)
    ).fetchone() == {"full_name": "Alice L."}


def test_a_user_cannot_rename_someone_else(postgrest: Postgrest, people: dict[str, Any], sql: Conn) -> None:
    """Alice's update of Bob's or Carol's profile touches zero rows."""
    with postgrest.as_user(people["alice"]) as cur:
        cur.execute(
            "update public.users set full_name = 'owned' where id in (%s, %s)",
            (people["bob_profile"], people["carol_profile"]),
        )
        assert cur.rowcount == 0
    assert sql.execute("select count(*) as n from public.users where full_name = 'owned'").fetchone() == {
        "n": 0
    }


@pytest.mark.parametrize(
    "statement",
    [
        "update public.users set phone_number = '+14155550999'",
        "update public.users set email = 'x@example.com'",
        "update public.users set auth_id = gen_random_uuid()",
        "update public.users set id = gen_random_uuid()",
        "insert into public.users (phone_number) values ('+14155550998')",
        "delete from public.users",
        "insert into public.whatsapp_messages (message_sid, user_id) select 'SMz', id from public.users",
        "update public.whatsapp_messages set body = 'forged'",
        "delete from public.whatsapp_messages",
        "select * from public.get_or_create_whatsapp_user('+14155550997')",
        "select * from public.receive_whatsapp_message('SMy', '+14155550996', 'x')",
        "select private.normalize_phone('+14155550995')",
    ],
)
def test_a_user_is_refused_everything_else(
    postgrest: Postgrest, people: dict[str, Any], statement: str
) -> None:
    """Identity columns, inserts, deletes, messages and the relay's RPCs are out of a client's reach (42501)."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege), postgrest.as_user(people["alice"]) as cur:
        cur.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "select * from public.users",
        "select * from public.whatsapp_messages",
        "update public.users set full_name = 'anon'",
        "insert into public.users (phone_number) values ('+14155550994')",
        "delete from public.whatsapp_messages",
        "select * from public.get_or_create_whatsapp_user('+14155550993')",
        "select * from public.receive_whatsapp_message('SMx', '+14155550992', 'x')",
    ],
)
def test_anon_gets_nothing(postgrest: Postgrest, people: dict[str, Any], statement: str) -> None:
    """Without a user token every table and RPC is refused with 42501."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege), postgrest.as_anon() as cur:
        cur.execute(statement)


def test_service_role_sees_everything_and_calls_the_relay_rpcs(
    postgrest: Postgrest, people: dict[str, Any]
) -> None:
    """The relay's role reads all profiles and messages and may call both RPCs."""
    with postgrest.as_service() as cur:
        assert cur.execute("select count(*) as n from public.users").fetchone() == {"n": 3}
        assert cur.execute("select count(*) as n from public.whatsapp_messages").fetchone() == {"n": 3}
        row = cur.execute(
            "select * from public.receive_whatsapp_message('SMs', '+14155550104', 'x')"
        ).fetchone()
        assert row is not None and row["user_created"] is True
        again = cur.execute(
            "select created from public.get_or_create_whatsapp_user('+14155550104')"
        ).fetchone()
        assert again == {"created": False}
