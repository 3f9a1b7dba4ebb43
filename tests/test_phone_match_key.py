"""private.phone_match_key: equivalent national forms of one mobile number share a key; nothing else does."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest

Conn = psycopg.Connection[dict[str, Any]]

EQUIVALENT = [
    ("Brazil, Sao Paulo mobile without the ninth digit", "+551187654321", "+5511987654321"),
    ("Brazil, Belo Horizonte mobile (DDD 31) without it", "+553196883193", "+5531996883193"),
    ("Brazil, Rio mobile starting 6", "+552164180266", "+5521964180266"),
    ("Mexico, WhatsApp's +521 form", "+5215512345678", "+525512345678"),
    ("Mexico, Guadalajara +521 form", "+5213312345678", "+523312345678"),
    ("Argentina, +549 mobile form", "+5491123456789", "+541123456789"),
    ("Argentina, Cordoba +549 form", "+5493512345678", "+543512345678"),
]

OWN_KEY = [
    ("Brazil, the nine-digit mobile itself", "+5511987654321"),
    ("Brazil, Sao Paulo landline (starts 3)", "+551132654321"),
    ("Brazil, landline starting 2", "+552122334455"),
    ("Brazil, landline starting 5", "+555132101234"),
    ("Brazil, too short to be a mobile", "+55118765432"),
    ("Mexico, ten-digit number", "+525512345678"),
    ("Mexico, too short for the 1 form", "+521551234567"),
    ("Argentina, number without the 9", "+541123456789"),
    ("Argentina, too short for the 9 form", "+549112345678"),
    ("United States", "+14155550123"),
    ("Germany", "+4915112345678"),
    ("Portugal (+351, not Brazil)", "+351912345678"),
    ("India", "+919876543210"),
    ("short number", "+1234567"),
]


@pytest.mark.parametrize(("case", "whatsapp_form", "key"), EQUIVALENT, ids=[c for c, _, _ in EQUIVALENT])
def test_equivalent_forms_share_one_key(sql: Conn, case: str, whatsapp_form: str, key: str) -> None:
    """Both written forms of the same mobile number map to the same key."""
    row = sql.execute(
        "select private.phone_match_key(%s) as a, private.phone_match_key(%s) as b", (whatsapp_form, key)
    ).fetchone()
    assert row == {"a": key, "b": key}


@pytest.mark.parametrize(("case", "phone"), OWN_KEY, ids=[c for c, _ in OWN_KEY])
def test_other_numbers_are_their_own_key(sql: Conn, case: str, phone: str) -> None:
    """Landlines, short numbers and other countries never collapse into another number."""
    assert sql.execute("select private.phone_match_key(%s) as k", (phone,)).fetchone() == {"k": phone}


def test_landline_and_mobile_with_the_same_eight_digits_stay_apart(sql: Conn) -> None:
    """A Brazilian landline is not the old form of any mobile."""
    row = sql.execute(
        "select private.phone_match_key('+551132654321') as landline,"
        " private.phone_match_key('+5511932654321') as mobile"
    ).fetchone()
    assert row is not None and row["landline"] != row["mobile"]


def test_no_number_has_no_key(sql: Conn) -> None:
    """Profiles without a phone (app users before verification) never collide on the unique key."""
    assert sql.execute("select private.phone_match_key(null) as k").fetchone() == {"k": None}


def test_a_lookup_by_key_can_use_the_unique_index(sql: Conn) -> None:
    """The expression every RPC compares is the indexed one: with sequential scans priced out, the
    planner serves it from users_phone_match_key (a mismatch would leave a sequential scan)."""
    # Session-wide on this test's own connection: it is in autocommit, where `set local` does nothing.
    sql.execute("set enable_seqscan = off")
    plan = sql.execute(
        "explain (format json) select * from public.users as u"
        " where private.phone_match_key(u.phone_number) = private.phone_match_key(%s)",
        ("+551187654321",),
    ).fetchone()
    assert plan is not None
    assert '"Index Name": "users_phone_match_key"' in json.dumps(plan["QUERY PLAN"])


def function_source(sql: Conn, signature: str) -> str:
    row = sql.execute("select prosrc from pg_proc where oid = %s::regprocedure", (signature,)).fetchone()
    assert row is not None
    return str(row["prosrc"])


def test_whatsapp_users_shortcuts_are_the_first_tests_of_the_functions_it_skips(sql: Conn) -> None:
    """private.whatsapp_user decides the common case inline (Twilio's E.164 is its own normal form, a number
    outside the equivalence countries its own key) instead of calling normalize_phone and phone_match_key.
    The copies must stay those functions' own first tests: a rule changed in one place only would be
    skipped for every message, since almost every message takes the shortcut."""
    e164 = re.search(r"if raw ~ '([^']+)' then", function_source(sql, "private.normalize_phone(text, text)"))
    prefixes = re.search(
        r"left\(phone, 3\) not in (\([^)]+\))", function_source(sql, "private.phone_match_key(text)")
    )
    assert e164 is not None and prefixes is not None
    caller = function_source(sql, "private.whatsapp_user(text, text, text, boolean)")
    assert f"when whatsapp_user.phone ~ '{e164.group(1)}'" in caller
    assert f"when left(normalized_phone, 3) not in {prefixes.group(1)} then normalized_phone" in caller
