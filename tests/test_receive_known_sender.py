"""receive_whatsapp_message finds a known sender whose profile the message would not change by one
lookup of its own, and everyone else through private.whatsapp_user: both ways end the same.

Every combination of a profile state and a message is run twice from the same start, once through
get_or_create_whatsapp_user (always whatsapp_user) and once through receive; the sender, the
created flag, every profile row, the merges, the moved numbers and the SQLSTATE of a refusal must
be equal. Function statistics show which way receive went, so the test also proves where the
shortcut applies.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from actors import Database

Conn = psycopg.Connection[dict[str, Any]]

PHONE = "+14155550181"
BRAZIL_9 = "+5511987654321"  # the nine-digit form of the number below, the same mobile
BRAZIL_8 = "+551187654321"
BSUID = "US.13491208655302741918"
OTHER_BSUID = "US.99991208655302741918"
OTHER_PHONE = "+14155550182"

# Profiles present before the message: (phone_number, whatsapp_user_id, full_name) rows.
STATES: dict[str, list[tuple[str | None, str | None, str | None]]] = {
    "no profile": [],
    "number, no name": [(PHONE, None, None)],
    "number and name": [(PHONE, None, "Ana")],
    "number, name and the BSUID": [(PHONE, BSUID, "Ana")],
    "number, name and another BSUID": [(PHONE, OTHER_BSUID, "Ana")],
    "number and name; the BSUID on a second profile": [(PHONE, None, "Ana"), (None, BSUID, None)],
    "BSUID only": [(None, BSUID, "Ana")],
    "another number with the BSUID": [(OTHER_PHONE, BSUID, "Ana")],
    "Brazil, nine digits": [(BRAZIL_9, None, "Ana")],
    "Brazil, eight digits": [(BRAZIL_8, None, "Ana")],
    "the BSUID's profile gave the number up to another": [(None, BSUID, "Ana"), (PHONE, OTHER_BSUID, "Bo")],
}

# Numbers that moved before the message: state -> (number, the place of the profile that gave it up, its BSUID).
MOVES: dict[str, tuple[str, int, str]] = {
    "the BSUID's profile gave the number up to another": (PHONE, 1, BSUID),
}

# Messages: (From, ProfileName, ExternalUserId).
MESSAGES: dict[str, tuple[str | None, str | None, str | None]] = {
    "Twilio's number": (f"whatsapp:{PHONE}", None, None),
    "Twilio's number and a name": (f"whatsapp:{PHONE}", "Ana B", None),
    "bare number and a name": (PHONE, "Ana B", None),
    "number written otherwise": ("+1 (415) 555-0181", "Ana B", None),
    "number and the BSUID": (f"whatsapp:{PHONE}", None, BSUID),
    "number, name and the BSUID": (f"whatsapp:{PHONE}", "Ana B", BSUID),
    "number and a prefixed BSUID": (f"whatsapp:{PHONE}", "Ana B", f"whatsapp:{BSUID}"),
    "number and a blank BSUID": (f"whatsapp:{PHONE}", "Ana B", "  "),
    "BSUID alone": (None, "Ana B", BSUID),
    "Brazil, nine digits": (f"whatsapp:{BRAZIL_9}", "Ana B", None),
    "Brazil, eight digits": (f"whatsapp:{BRAZIL_8}", "Ana B", None),
    "too short a number": ("whatsapp:+1415", "Ana B", None),
    "a stored number with junk before it": (f"junk{PHONE}", "Ana B", None),
    "number and a malformed BSUID": (f"whatsapp:{PHONE}", "Ana B", "not a bsuid"),
    "neither": (None, "Ana B", None),
    "an empty number": ("", "Ana B", None),
    "the prefix alone": ("whatsapp:", "Ana B", None),
    "number behind a capitalised prefix": (f"WhatsApp:{PHONE}", "Ana B", None),
    "number with spaces around it": (f" whatsapp:{PHONE} ", "Ana B", None),
}

# Where receive needs no whatsapp_user: the profile holds the number as written (after
# 'whatsapp:'), the BSUID if one is sent, and a name if one is sent.
SHORTCUTS = {
    ("number, no name", "Twilio's number"),
    ("number and name", "Twilio's number"),
    ("number and name", "Twilio's number and a name"),
    ("number and name", "bare number and a name"),
    ("number and name", "number and a blank BSUID"),
    ("number, name and the BSUID", "Twilio's number"),
    ("number, name and the BSUID", "Twilio's number and a name"),
    ("number, name and the BSUID", "bare number and a name"),
    ("number, name and the BSUID", "number and a blank BSUID"),
    ("number, name and the BSUID", "number and the BSUID"),
    ("number, name and the BSUID", "number, name and the BSUID"),
    ("number, name and another BSUID", "Twilio's number"),
    ("number, name and another BSUID", "Twilio's number and a name"),
    ("number, name and another BSUID", "bare number and a name"),
    ("number, name and another BSUID", "number and a blank BSUID"),
    ("number and name; the BSUID on a second profile", "Twilio's number"),
    ("number and name; the BSUID on a second profile", "Twilio's number and a name"),
    ("number and name; the BSUID on a second profile", "bare number and a name"),
    ("number and name; the BSUID on a second profile", "number and a blank BSUID"),
    ("Brazil, nine digits", "Brazil, nine digits"),
    ("Brazil, eight digits", "Brazil, eight digits"),
    ("the BSUID's profile gave the number up to another", "Twilio's number"),
    ("the BSUID's profile gave the number up to another", "Twilio's number and a name"),
    ("the BSUID's profile gave the number up to another", "bare number and a name"),
    ("the BSUID's profile gave the number up to another", "number and a blank BSUID"),
}


@pytest.fixture
def counted(db: Database, admin: Conn) -> Iterator[Conn]:
    """A `postgres` connection whose transactions count their plpgsql calls (pg_stat_xact_user_functions)."""
    admin.execute(f'alter database "{db.dbname}" set track_functions = pl')
    with db.connect("postgres", autocommit=False) as conn:
        yield conn


WHATSAPP_USER_CALLS = (
    "select coalesce(sum(calls), 0) as n from pg_stat_xact_user_functions"
    " where schemaname = 'private' and funcname = 'whatsapp_user'"
)


def outcome(conn: Conn, state: str, call: str | None = None, params: tuple[Any, ...] = ()) -> dict[str, Any]:
    """The state's profiles, then `call`: what it returned or refused, the profiles and merges after it, and
    how many times whatsapp_user ran. Rolled back, so that every call starts from the same rows."""
    try:
        names = {}  # profile id -> its place in the state (ids differ between runs)
        for place, row in enumerate(STATES[state], start=1):
            inserted = conn.execute(
                "insert into public.users (phone_number, whatsapp_user_id, full_name)"
                " values (%s, %s, %s) returning id as n",
                row,
            ).fetchone()
            assert inserted is not None
            names[inserted["n"]] = f"profile {place} of the state"
        if state in MOVES:
            number, place, bsuid = MOVES[state]
            conn.execute(
                "insert into public.whatsapp_number_reassignments"
                " (phone_number, previous_user_id, previous_whatsapp_user_id, reason) values (%s, %s, %s, 'moved')",
                (number, list(names)[place - 1], bsuid),
            )
        if call is None:
            return {"profiles": profiles(conn, names)}
        calls_before = one(conn, WHATSAPP_USER_CALLS)
        try:
            with conn.transaction():
                answer = conn.execute(call, params).fetchone()
        except psycopg.Error as refused:
            return {"refused": refused.sqlstate, "profiles": profiles(conn, names)}
        assert answer is not None
        return {
            "sender": names.get(answer["id"], "new"),
            "created": answer["created"],
            "profiles": profiles(conn, names),
            "merges": one(conn, "select count(*) as n from public.user_merges"),
            "moves": one(conn, "select count(*) as n from public.whatsapp_number_reassignments"),
            "whatsapp_user calls": one(conn, WHATSAPP_USER_CALLS) - calls_before,
        }
    finally:
        conn.rollback()


def one(conn: Conn, query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row["n"]


def profiles(conn: Conn, names: dict[Any, str]) -> list[tuple[str, str]]:
    """Every profile, every column but the id and the timestamps (which differ between runs), named by
    its place in the state or 'new'."""
    rows = conn.execute(
        "select id, (to_jsonb(u) - 'id' - 'created_at' - 'updated_at')::text as columns from public.users as u"
    ).fetchall()
    return sorted((names.get(r["id"], "new"), r["columns"]) for r in rows)


GET_OR_CREATE = "select id, created from public.get_or_create_whatsapp_user(%s, %s, %s)"
RECEIVE = (
    "select user_id as id, user_created as created"
    " from public.receive_whatsapp_message('SM00000000000000000000000000000181', %s, 'hi', %s, '[]', %s)"
)


def test_receive_ends_as_whatsapp_user_does_and_skips_it_only_where_the_profile_holds_the_message(
    counted: Conn,
) -> None:
    """209 state and message pairs: the same sender, profiles, merges, moves or refusal both ways; whatsapp_user
    skipped exactly for the pairs in SHORTCUTS, each a sender that existed and a profile left as found."""
    starting = {state: outcome(counted, state)["profiles"] for state in STATES}
    differences = []
    shortcuts = set()
    shortcuts_that_changed_something = []
    for state, message in itertools.product(STATES, MESSAGES):
        expected = outcome(counted, state, GET_OR_CREATE, MESSAGES[message])
        received = outcome(counted, state, RECEIVE, MESSAGES[message])
        if received.get("whatsapp_user calls") == 0:
            shortcuts.add((state, message))
            if received["sender"] == "new" or received["created"] or received["profiles"] != starting[state]:
                shortcuts_that_changed_something.append((state, message, received))
        expected.pop("whatsapp_user calls", None)
        received.pop("whatsapp_user calls", None)
        if expected != received:
            differences.append((state, message, expected, received))
    assert differences == []
    assert shortcuts == SHORTCUTS
    assert shortcuts_that_changed_something == []
