"""Linking from inside WhatsApp: a code the app shows, sent from WhatsApp and confirmed with YES."""

from __future__ import annotations

import itertools
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from actors import Database, Postgrest, SupabaseAuth

Conn = psycopg.Connection[dict[str, Any]]

BUSINESS = "+14155238886"
PHONE = "+14155550123"
BSUID = "US.13491208655302741918"
_sids = itertools.count(1)


def new_sid() -> str:
    return f"SM{next(_sids):032d}"


@pytest.fixture
def business_number(sql: Conn) -> str:
    sql.execute("insert into public.whatsapp_settings (business_number) values (%s)", (BUSINESS,))
    return BUSINESS


def create_code(postgrest: Postgrest, auth_id: uuid.UUID) -> dict[str, Any]:
    with postgrest.as_user(auth_id) as cur:
        row = cur.execute("select * from public.create_whatsapp_link_code()").fetchone()
    assert row is not None
    return row


def receive(
    conn: Conn,
    body: str,
    phone: str | None = f"whatsapp:{PHONE}",
    bsuid: str | None = None,
    sid: str | None = None,
) -> dict[str, Any]:
    row = conn.execute(
        "select * from public.receive_whatsapp_message(%s, %s, %s, null, '[]', %s)",
        (sid or new_sid(), phone, body, bsuid),
    ).fetchone()
    assert row is not None
    return row


def profile_of(sql: Conn, auth_id: uuid.UUID) -> dict[str, Any] | None:
    return sql.execute(
        "select id, auth_id, email, phone_number, whatsapp_user_id from public.users where auth_id = %s",
        (auth_id,),
    ).fetchone()


def code_merges(sql: Conn) -> list[dict[str, Any]]:
    return sql.execute(
        "select survivor_id, absorbed_id, auth_id, phone_number, outcome, reason from public.user_merges"
        " where triggered_by = 'whatsapp_code' order by created_at, id"
    ).fetchall()


def expire(sql: Conn, auth_id: uuid.UUID, column: str = "expires_at") -> None:
    sql.execute(
        f"update private.whatsapp_link_codes set {column} = now() - interval '11 minutes' where auth_id = %s",
        (auth_id,),
    )


# creating a code ------------------------------------------------------------


def test_a_code_is_short_readable_stored_hashed_and_comes_with_the_wa_me_link(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """The RPC returns LINK- and six unambiguous characters, a 10-minute expiry and the wa.me link; only its hash is kept."""
    ada = supabase_auth.sign_up("ada@example.com")
    made = create_code(postgrest, ada)
    assert made["code"][:5] == "LINK-" and len(made["code"]) == 11
    assert set(made["code"][5:]) <= set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")
    assert made["whatsapp_url"] == f"https://wa.me/14155238886?text={made['code']}"
    stored = sql.execute(
        "select code_hash = extensions.digest(%s, 'sha256') as hashed, expires_at - created_at as lasts,"
        " position(%s in encode(code_hash, 'escape')) as plain from private.whatsapp_link_codes where auth_id = %s",
        (made["code"], made["code"], ada),
    ).fetchone()
    assert stored is not None
    assert stored["hashed"] is True and stored["plain"] == 0
    assert str(stored["lasts"]) == "0:10:00"


def test_a_new_code_replaces_the_previous_one(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """After a second code the first is unknown, the second works."""
    ada = supabase_auth.sign_up("ada@example.com")
    first = create_code(postgrest, ada)["code"]
    second = create_code(postgrest, ada)["code"]
    assert receive(sql, first)["link_code"] == "code_unknown"
    assert receive(sql, second)["link_code"] == "code_held"


def test_creating_codes_is_rate_limited_per_account(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """The sixth code within 15 minutes is refused with PT429; another account is not affected."""
    ada = supabase_auth.sign_up("ada@example.com")
    bob = supabase_auth.sign_up("bob@example.com")
    for _ in range(5):
        create_code(postgrest, ada)
    with pytest.raises(psycopg.Error) as caught, postgrest.as_user(ada) as cur:
        cur.execute("select * from public.create_whatsapp_link_code()")
    assert caught.value.sqlstate == "PT429"
    assert create_code(postgrest, bob)["code"].startswith("LINK-")


def test_only_a_signed_in_user_may_create_a_code_and_only_with_a_business_number(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """anon and the service role may not call it (42501); without the setting it says which setting (PT503)."""
    for actor in (postgrest.as_anon, postgrest.as_service):
        with pytest.raises(psycopg.Error) as caught, actor() as cur:
            cur.execute("select * from public.create_whatsapp_link_code()")
        assert caught.value.sqlstate == "42501"
    ada = supabase_auth.sign_up("ada@example.com")
    with pytest.raises(psycopg.Error) as missing, postgrest.as_user(ada) as cur:
        cur.execute("select * from public.create_whatsapp_link_code()")
    assert missing.value.sqlstate == "PT503"
    assert "business_number" in str(missing.value)
    assert sql.execute("select count(*) as n from private.whatsapp_link_codes").fetchone() == {"n": 0}


def test_the_settings_table_is_the_service_roles_alone(postgrest: Postgrest, business_number: str) -> None:
    """anon and authenticated cannot read the settings; the service role reads and writes them."""
    with pytest.raises(psycopg.Error) as caught, postgrest.as_user(uuid.uuid4()) as cur:
        cur.execute("select * from public.whatsapp_settings")
    assert caught.value.sqlstate == "42501"
    with postgrest.as_service() as cur:
        cur.execute("update public.whatsapp_settings set business_number = '+14155238887'")
        assert cur.execute("select business_number from public.whatsapp_settings").fetchone() == {
            "business_number": "+14155238887"
        }


# the story --------------------------------------------------------------------


def test_a_bsuid_only_sender_links_with_code_and_yes_and_later_gets_its_phone(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """Code (held, masked account), YES (linked): the WhatsApp profile survives with the account, keeps its BSUID, then takes its phone."""
    ada = supabase_auth.sign_up("ada@example.com")
    app_profile = profile_of(sql, ada)
    assert app_profile is not None
    code = create_code(postgrest, ada)["code"]
    held = receive(sql, f"  {code.lower()} ", phone=None, bsuid=BSUID)
    assert (held["link_code"], held["link_account"]) == ("code_held", "a***@example.com")
    assert profile_of(sql, ada) == app_profile  # nothing linked by the code alone
    linked = receive(sql, "yes", phone=None, bsuid=BSUID)
    assert (linked["link_code"], linked["link_account"]) == ("linked", "a***@example.com")
    profile = profile_of(sql, ada)
    assert profile is not None
    assert (profile["id"], profile["email"], profile["whatsapp_user_id"]) == (
        held["user_id"],
        "ada@example.com",
        BSUID,
    )
    assert sql.execute(
        "select count(*) as n from public.users where id = %s", (app_profile["id"],)
    ).fetchone() == {"n": 0}
    assert sql.execute(
        "select count(*) as n from public.whatsapp_messages where user_id = %s", (held["user_id"],)
    ).fetchone() == {"n": 2}
    assert code_merges(sql) == [
        {
            "survivor_id": held["user_id"],
            "absorbed_id": app_profile["id"],
            "auth_id": ada,
            "phone_number": None,
            "outcome": "merged",
            "reason": None,
        }
    ]
    later = receive(sql, "hello", phone=f"whatsapp:{PHONE}", bsuid=BSUID)
    assert later["user_id"] == held["user_id"] and later["link_code"] is None
    assert profile_of(sql, ada) == {**profile, "phone_number": PHONE}
    # Linking twice is a no-op: a new code from the same sender answers linked, changes nothing.
    again = create_code(postgrest, ada)["code"]
    assert receive(sql, again, phone=f"whatsapp:{PHONE}", bsuid=BSUID)["link_code"] == "linked"
    assert len(code_merges(sql)) == 1


def test_a_phone_sender_links_and_spanish_or_portuguese_yes_confirms(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """A phone sender's Sí confirms; the audit names the number; the profile keeps the number."""
    ada = supabase_auth.sign_up("ada@example.com")
    receive(sql, "hi there")
    code = create_code(postgrest, ada)["code"]
    assert receive(sql, code)["link_code"] == "code_held"
    assert receive(sql, "Sí")["link_code"] == "linked"
    profile = profile_of(sql, ada)
    assert profile is not None and profile["phone_number"] == PHONE
    assert [m["phone_number"] for m in code_merges(sql)] == [PHONE]


def test_without_a_confirmation_nothing_is_linked(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """A held code and other messages, but no YES: the account and the WhatsApp profile stay apart."""
    ada = supabase_auth.sign_up("ada@example.com")
    code = create_code(postgrest, ada)["code"]
    assert receive(sql, code)["link_code"] == "code_held"
    assert receive(sql, "what is this?")["link_code"] is None
    assert receive(sql, "no")["link_code"] is None
    profile = profile_of(sql, ada)
    assert profile is not None and profile["phone_number"] is None
    assert code_merges(sql) == []


def test_a_confirmation_from_another_sender_or_after_the_window_links_nothing(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """YES from another number is an ordinary message; YES after 5 minutes answers code_expired."""
    ada = supabase_auth.sign_up("ada@example.com")
    code = create_code(postgrest, ada)["code"]
    assert receive(sql, code)["link_code"] == "code_held"
    assert receive(sql, "YES", phone="whatsapp:+14155550999")["link_code"] is None
    sql.execute("update private.whatsapp_link_codes set held_at = now() - interval '6 minutes'")
    assert receive(sql, "YES")["link_code"] == "code_expired"
    profile = profile_of(sql, ada)
    assert profile is not None and profile["phone_number"] is None


def test_an_expired_code_and_a_used_code_are_refused_and_audited(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """An expired code answers code_expired; a code already used answers code_unknown to anyone else; both audited."""
    ada = supabase_auth.sign_up("ada@example.com")
    code = create_code(postgrest, ada)["code"]
    expire(sql, ada)
    assert receive(sql, code)["link_code"] == "code_expired"
    code = create_code(postgrest, ada)["code"]
    receive(sql, code)
    assert receive(sql, "YES")["link_code"] == "linked"
    reused = receive(sql, code, phone="whatsapp:+14155550999")
    assert reused["link_code"] == "code_unknown"
    reasons = [m["reason"] for m in code_merges(sql) if m["outcome"] == "refused"]
    assert reasons == ["PT410: link code expired", "PT410: link code already used"]


def test_a_whatsapp_profile_linked_to_another_account_is_refused(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """Bob's linked WhatsApp sending Ada's code: linked_elsewhere, nothing changes, audited with PT409 and no phone."""
    ada = supabase_auth.sign_up("ada@example.com")
    bob = supabase_auth.sign_up("bob@example.com")
    receive(sql, create_code(postgrest, bob)["code"])
    assert receive(sql, "YES")["link_code"] == "linked"
    before = sql.execute("select * from public.users order by id").fetchall()
    refused = receive(sql, create_code(postgrest, ada)["code"])
    assert (refused["link_code"], refused["link_account"]) == ("linked_elsewhere", None)
    assert sql.execute("select * from public.users order by id").fetchall() == before
    assert code_merges(sql)[-1] == {
        "survivor_id": refused["user_id"],
        "absorbed_id": None,
        "auth_id": ada,
        "phone_number": None,
        "outcome": "refused",
        "reason": "PT409: this WhatsApp profile is linked to another account",
    }


def test_an_account_with_another_whatsapp_profile_is_refused(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """Ada linked to one WhatsApp number; her code sent from another: account_has_whatsapp, nothing changes."""
    ada = supabase_auth.sign_up("ada@example.com")
    receive(sql, create_code(postgrest, ada)["code"])
    receive(sql, "YES")
    other = receive(sql, create_code(postgrest, ada)["code"], phone="whatsapp:+14155550999")
    assert other["link_code"] == "account_has_whatsapp"
    profile = profile_of(sql, ada)
    assert profile is not None and profile["phone_number"] == PHONE
    assert code_merges(sql)[-1]["reason"] == "PT409: the account already has another WhatsApp profile"


def test_guessing_is_bounded_per_sender_and_audited(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """Five wrong codes from one sender, then even a valid code answers too_many_tries; another sender is unaffected."""
    ada = supabase_auth.sign_up("ada@example.com")
    for guess in ("LINK-AAAAAA", "LINK-BBBBBB", "LINK-CCCCCC", "LINK-DDDDDD", "LINK-EEEEEE"):
        assert receive(sql, guess)["link_code"] == "code_unknown"
    code = create_code(postgrest, ada)["code"]
    assert receive(sql, code)["link_code"] == "too_many_tries"
    refusals = code_merges(sql)
    assert len(refusals) == 5
    assert refusals[-1]["reason"].startswith("PT404: unknown link code (5 failed codes this hour")
    assert receive(sql, code, phone="whatsapp:+14155550999")["link_code"] == "code_held"


def test_a_redelivered_wrong_code_is_not_counted_twice(sql: Conn, business_number: str) -> None:
    """The same MessageSid delivered again answers the same and adds no failure or audit row."""
    sid = new_sid()
    assert receive(sql, "LINK-AAAAAA", sid=sid)["link_code"] == "code_unknown"
    again = receive(sql, "LINK-AAAAAA", sid=sid)
    assert (again["link_code"], again["duplicate"]) == ("code_unknown", True)
    assert sql.execute("select failures from private.whatsapp_link_code_failures").fetchall() == [
        {"failures": 1}
    ]
    assert len(code_merges(sql)) == 1


def test_one_code_can_be_held_by_three_senders_at_most(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """A fourth sender of the same code gets code_unknown and the refusal is audited."""
    ada = supabase_auth.sign_up("ada@example.com")
    code = create_code(postgrest, ada)["code"]
    for n in range(3):
        assert receive(sql, code, phone=f"whatsapp:+1415555090{n}")["link_code"] == "code_held"
    assert receive(sql, code, phone="whatsapp:+14155550909")["link_code"] == "code_unknown"
    assert code_merges(sql)[-1]["reason"] == "PT429: link code already sent by 3 WhatsApp senders"


HANDLER_CALLS = (
    "select coalesce(sum(calls), 0) as n from pg_stat_xact_user_functions"
    " where schemaname = 'private' and funcname = 'handle_link_code'"
)


def test_ordinary_messages_never_reach_the_link_code_handler(
    db: Database, admin: Conn, business_number: str
) -> None:
    """Bodies that are not exactly a code or a confirmation word do not call private.handle_link_code; YES does."""
    admin.execute(f'alter database "{db.dbname}" set track_functions = pl')
    with db.connect("postgres", autocommit=False) as conn:
        receive(conn, "hello")  # the sender exists: the known sender's path from here on
        conn.commit()
        for body in ("yes please", "LINK-ABC", "my code is LINK-ABCDEF", "hello", ""):
            assert receive(conn, body)["link_code"] is None
        assert conn.execute(HANDLER_CALLS).fetchone() == {"n": 0}
        receive(conn, "yes")
        assert conn.execute(HANDLER_CALLS).fetchone() == {"n": 1}
        conn.rollback()


# races ------------------------------------------------------------------------


def run_together(
    db: Database, calls: list[tuple[str, tuple[Any, ...]]]
) -> list[dict[str, Any] | BaseException]:
    """Each statement on its own connection, released together by a barrier."""
    connections = [db.connect("postgres") for _ in calls]
    barrier = threading.Barrier(len(calls))

    def run(job: tuple[Conn, tuple[str, tuple[Any, ...]]]) -> dict[str, Any] | BaseException:
        conn, (query, params) = job
        barrier.wait()
        try:
            row = conn.execute(query, params).fetchone()
        except psycopg.Error as error:
            return error
        assert row is not None
        return row

    try:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(run, zip(connections, calls, strict=True)))
    finally:
        for conn in connections:
            conn.close()


RECEIVE = "select * from public.receive_whatsapp_message(%s, %s, %s)"


def test_concurrent_redeliveries_of_the_code_and_of_the_yes_link_once(
    db: Database, sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """The code message on 5 connections at once holds it once; YES on 5 at once links once and all answer linked."""
    ada = supabase_auth.sign_up("ada@example.com")
    code = create_code(postgrest, ada)["code"]
    code_sid, yes_sid = new_sid(), new_sid()
    held = run_together(db, [(RECEIVE, (code_sid, f"whatsapp:{PHONE}", code))] * 5)
    assert all(isinstance(r, dict) for r in held)
    assert {r["link_code"] for r in held if isinstance(r, dict)} == {"code_held"}
    assert sql.execute("select holds from private.whatsapp_link_codes").fetchone() == {"holds": 1}
    linked = run_together(db, [(RECEIVE, (yes_sid, f"whatsapp:{PHONE}", "YES"))] * 5)
    assert [r["link_code"] for r in linked if isinstance(r, dict)] == ["linked"] * 5
    assert [m["outcome"] for m in code_merges(sql)] == ["merged"]
    assert sql.execute("select count(*) as n from public.whatsapp_messages").fetchone() == {"n": 2}


def test_two_different_codes_at_once_then_yes_links_exactly_one_account(
    db: Database, sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """One sender sends Ada's and Bob's codes at once: both are answered code_held; YES links one account only."""
    ada = supabase_auth.sign_up("ada@example.com")
    bob = supabase_auth.sign_up("bob@example.com")
    receive(sql, "hello")  # the sender exists, so both calls find the same profile
    codes = [create_code(postgrest, ada)["code"], create_code(postgrest, bob)["code"]]
    results = run_together(db, [(RECEIVE, (new_sid(), f"whatsapp:{PHONE}", c)) for c in codes])
    assert [r["link_code"] for r in results if isinstance(r, dict)] == ["code_held", "code_held"]
    assert receive(sql, "YES")["link_code"] == "linked"
    linked = [p for p in (profile_of(sql, ada), profile_of(sql, bob)) if p and p["phone_number"] == PHONE]
    assert len(linked) == 1
    assert [m["outcome"] for m in code_merges(sql)] == ["merged"]


# erasure -----------------------------------------------------------------------


def test_auth_deletion_after_a_code_link_keeps_the_whatsapp_profile_and_drops_the_code(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """Deleting the auth user of a BSUID-only code link keeps the WhatsApp profile (no account) and its code row goes."""
    ada = supabase_auth.sign_up("ada@example.com")
    held = receive(sql, create_code(postgrest, ada)["code"], phone=None, bsuid=BSUID)
    receive(sql, "YES", phone=None, bsuid=BSUID)
    supabase_auth.delete_user(ada)
    assert sql.execute(
        "select auth_id, email, whatsapp_user_id from public.users where id = %s", (held["user_id"],)
    ).fetchone() == {
        "auth_id": None,
        "email": None,
        "whatsapp_user_id": BSUID,
    }
    assert sql.execute("select count(*) as n from private.whatsapp_link_codes").fetchone() == {"n": 0}


def test_forget_user_after_a_code_link_erases_the_person_and_the_audit(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, business_number: str
) -> None:
    """forget_user of a code-linked profile removes the profile, its auth user, its messages, its code and its audit rows."""
    ada = supabase_auth.sign_up("ada@example.com")
    held = receive(sql, create_code(postgrest, ada)["code"])
    receive(sql, "YES")
    with postgrest.as_service() as cur:
        cur.execute("select * from public.forget_user(%s)", (held["user_id"],))
    assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": 0}
    assert sql.execute("select count(*) as n from auth.users").fetchone() == {"n": 0}
    assert sql.execute("select count(*) as n from private.whatsapp_link_codes").fetchone() == {"n": 0}
    assert code_merges(sql) == []
