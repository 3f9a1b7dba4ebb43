"""One person, one profile across the country-specific forms of one mobile number."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from actors import Postgrest, SupabaseAuth

Conn = psycopg.Connection[dict[str, Any]]

# (country, the form WhatsApp writes from, the form the person verifies in the app)
PAIRS = [
    ("Brazil: WhatsApp id without the ninth digit", "+551187654321", "+5511987654321"),
    ("Mexico: WhatsApp id with +521", "+5215512345678", "+525512345678"),
    ("Argentina: WhatsApp id with +549", "+5491123456789", "+541123456789"),
]


def receive(sql: Conn, sid: str, phone: str) -> dict[str, Any]:
    row = sql.execute(
        "select * from public.receive_whatsapp_message(%s, %s, 'hi')", (sid, f"whatsapp:{phone}")
    ).fetchone()
    assert row is not None
    return row


def profiles(sql: Conn) -> list[dict[str, Any]]:
    return sql.execute(
        "select u.id, u.auth_id, u.phone_number,"
        " (select count(*) from public.whatsapp_messages m where m.user_id = u.id) as messages"
        " from public.users u order by u.created_at"
    ).fetchall()


@pytest.mark.parametrize(("case", "whatsapp_form", "verified_form"), PAIRS, ids=[c for c, _, _ in PAIRS])
def test_the_whatsapp_sender_and_the_app_user_who_verified_the_other_form_are_one_profile(
    sql: Conn,
    supabase_auth: SupabaseAuth,
    postgrest: Postgrest,
    case: str,
    whatsapp_form: str,
    verified_form: str,
) -> None:
    """Messages from one form, verification of the other: one profile, in WhatsApp's form, every message kept."""
    first = receive(sql, "SMe1", whatsapp_form)
    receive(sql, "SMe2", whatsapp_form)
    user_id = supabase_auth.sign_up("eq@example.com")
    supabase_auth.confirm_phone(user_id, verified_form.lstrip("+"))
    with postgrest.as_user(user_id) as cur:
        linked = cur.execute("select id, phone_number from public.link_whatsapp_account()").fetchone()
    assert linked == {"id": first["user_id"], "phone_number": whatsapp_form}
    assert profiles(sql) == [
        {"id": first["user_id"], "auth_id": user_id, "phone_number": whatsapp_form, "messages": 2}
    ]


@pytest.mark.parametrize(("case", "whatsapp_form", "verified_form"), PAIRS, ids=[c for c, _, _ in PAIRS])
def test_a_number_verified_first_takes_whatsapps_form_when_whatsapp_writes(
    sql: Conn, supabase_auth: SupabaseAuth, case: str, whatsapp_form: str, verified_form: str
) -> None:
    """The app user verified first; their first WhatsApp message lands on their profile and its form wins."""
    user_id = supabase_auth.sign_up("first@example.com")
    supabase_auth.confirm_phone(user_id, verified_form.lstrip("+"))
    assert [p["phone_number"] for p in profiles(sql)] == [verified_form]
    row = receive(sql, "SMe3", whatsapp_form)
    assert row["user_created"] is False
    assert profiles(sql) == [
        {"id": row["user_id"], "auth_id": user_id, "phone_number": whatsapp_form, "messages": 1}
    ]


@pytest.mark.parametrize(("case", "whatsapp_form", "verified_form"), PAIRS, ids=[c for c, _, _ in PAIRS])
def test_both_forms_from_get_or_create_find_one_profile(
    sql: Conn, case: str, whatsapp_form: str, verified_form: str
) -> None:
    """get_or_create_whatsapp_user treats the two forms as one number, however each is written."""
    calls = [
        sql.execute("select id, created from public.get_or_create_whatsapp_user(%s)", (phone,)).fetchone()
        for phone in (
            f"whatsapp:{whatsapp_form}",
            verified_form,
            verified_form.removeprefix("+"),  # Supabase Auth's form, through normalize_phone's clean-up
            whatsapp_form,
        )
    ]
    assert [(c["created"], c["id"] == calls[0]["id"]) for c in calls if c] == [
        (True, True),
        (False, True),
        (False, True),
        (False, True),
    ]


def test_an_auth_user_created_with_the_other_form_attaches_to_the_whatsapp_profile(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """The profile trigger's attach matches equivalent forms too, keeping WhatsApp's."""
    row = receive(sql, "SMe4", "+5215512345678")
    user_id = supabase_auth.admin_create_user("525512345678", email="mx@example.com")
    assert profiles(sql) == [
        {"id": row["user_id"], "auth_id": user_id, "phone_number": "+5215512345678", "messages": 1}
    ]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("+551132654321", "+5511932654321"),  # Brazilian landline vs a mobile
        ("+14155550123", "+14155550124"),
        ("+525512345678", "+5215512345679"),
    ],
)
def test_numbers_that_are_not_equivalent_stay_apart(sql: Conn, one: str, other: str) -> None:
    """A landline and a mobile, or two different numbers, never share a profile."""
    a = receive(sql, "SMn1", one)
    b = receive(sql, "SMn2", other)
    assert a["user_id"] != b["user_id"]
    assert len(profiles(sql)) == 2


def test_two_profiles_with_equivalent_forms_cannot_be_inserted(sql: Conn) -> None:
    """Uniqueness is on the key: the second form of a number is a unique violation, whoever writes it."""
    sql.execute("insert into public.users (phone_number) values ('+551187654321')")
    with pytest.raises(psycopg.errors.UniqueViolation, match="users_phone_match_key"):
        sql.execute("insert into public.users (phone_number) values ('+5511987654321')")
