"""private.normalize_phone: every accepted form becomes E.164; everything else is refused with 22023."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

ACCEPTED = [
    ("whatsapp:+14155550123", "+14155550123"),
    ("WhatsApp:+14155550123", "+14155550123"),
    ("+1 (415) 555-0123", "+14155550123"),
    ("+1.415.555.0123", "+14155550123"),
    ("0014155550123", "+14155550123"),
    ("14155550123", "+14155550123"),
    ("  +44 20 7946 0958 ", "+442079460958"),
    ("+5511987654321", "+5511987654321"),
    ("+1234567", "+1234567"),
    ("+123456789012345", "+123456789012345"),
    ("whatsapp:+1234567", "+1234567"),
    ("whatsapp:+123456789012345", "+123456789012345"),
    ("whatsapp: +14155550123", "+14155550123"),
    (" whatsapp:+14155550123", "+14155550123"),
]

REFUSED = [
    (None, "phone is required"),
    ("", "phone is required"),
    ("   ", "phone is required"),
    ("whatsapp:", "phone is required"),
    ("abc", "phone 'abc' is not a valid international phone number"),
    ("+1415555O123", "phone '+1415555O123' is not a valid international phone number"),
    ("+123456", "phone '+123456' is not a valid international phone number"),
    ("+1234567890123456", "phone '+1234567890123456' is not a valid international phone number"),
    ("04155550123", "phone '04155550123' is not a valid international phone number"),
    ("+0155550123", "phone '+0155550123' is not a valid international phone number"),
    ("++14155550123", "phone '++14155550123' is not a valid international phone number"),
    ("1415555+0123", "phone '1415555+0123' is not a valid international phone number"),
    ("+14155550123'; drop table public.users; --", None),
    ("'+14155550123'", None),
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED, ids=[f"{r!r} becomes {e}" for r, e in ACCEPTED])
def test_accepted_forms_become_e164(sql: psycopg.Connection[dict[str, Any]], raw: str, expected: str) -> None:
    """Each accepted spelling of a number normalises to the same E.164 string."""
    row = sql.execute("select private.normalize_phone(%s) as phone", (raw,)).fetchone()
    assert row == {"phone": expected}


@pytest.mark.parametrize(("raw", "message"), REFUSED, ids=[f"{r!r} is refused" for r, _ in REFUSED])
def test_refused_forms_raise_22023_naming_the_field(
    sql: psycopg.Connection[dict[str, Any]], raw: str | None, message: str | None
) -> None:
    """A bad number raises invalid_parameter_value with a message that names the field and the value."""
    with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
        sql.execute("select private.normalize_phone(%s)", (raw,))
    diag = raised.value.diag
    assert diag.sqlstate == "22023"
    assert (diag.message_primary or "").startswith("phone")
    if message is not None:
        assert diag.message_primary == message
    assert diag.message_hint is not None and "+14155550123" in diag.message_hint


# Twilio's own form takes a shortcut; the same digits behind 'WhatsApp:' take the general path.
SHORTCUT_EDGES = [
    "+1234567",
    "+123456789012345",
    "+123456",
    "+1234567890123456",
    "+0155550123",
    "++14155550123",
    "+",
    "+14155550123 ",
    "+14155550123\n",
    "+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0662\u0663",  # Arabic-Indic digits
]


@pytest.mark.parametrize("number", SHORTCUT_EDGES)
def test_the_shortcut_for_twilios_form_agrees_with_the_general_path(
    sql: psycopg.Connection[dict[str, Any]], number: str
) -> None:
    """'whatsapp:' + a number gives what the general clean-up gives: the same E.164, or a refusal."""
    outcomes = []
    for prefix in ("whatsapp:", "WhatsApp:"):
        try:
            row = sql.execute("select private.normalize_phone(%s) as phone", (prefix + number,)).fetchone()
            outcomes.append(("accepted", row["phone"] if row else None))
        except psycopg.errors.InvalidParameterValue:
            outcomes.append(("refused", None))
    assert outcomes[0] == outcomes[1]


def test_the_rpcs_own_shortcut_gives_what_normalize_phone_gives(
    sql: psycopg.Connection[dict[str, Any]],
) -> None:
    """private.whatsapp_user decides Twilio's form itself before calling normalize_phone: every accepted,
    refused and edge form, bare and behind 'whatsapp:', is stored as normalize_phone writes it or refused
    with 22023 as normalize_phone refuses it."""
    forms = (
        [raw for raw, _ in ACCEPTED + REFUSED if raw]
        + SHORTCUT_EDGES
        + [f"whatsapp:{n}" for n in SHORTCUT_EDGES]
    )
    disagreements = []
    stored: set[str] = set()
    for raw in forms:
        outcomes = []
        for query in (
            "select private.normalize_phone(%s) as phone",
            "select phone_number as phone from public.get_or_create_whatsapp_user(%s)",
        ):
            try:
                row = sql.execute(query, (raw,)).fetchone()
                outcomes.append(row["phone"] if row else None)
            except psycopg.errors.InvalidParameterValue:
                outcomes.append("22023")
        if outcomes[0] != outcomes[1]:
            disagreements.append((raw, *outcomes))
        stored.update(o for o in outcomes[1:] if o != "22023")
    assert disagreements == []
    assert len(stored) == 5  # both paths were taken: five numbers accepted, the rest refused
    assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": len(stored)}


def test_the_field_name_is_the_callers(sql: psycopg.Connection[dict[str, Any]]) -> None:
    """Callers name the field the value came from, so the error points at it."""
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"^From 'x' is not"):
        sql.execute("select private.normalize_phone('x', 'From')")


def test_users_refuse_a_phone_number_that_is_not_e164(sql: psycopg.Connection[dict[str, Any]]) -> None:
    """The table's own check keeps phone_number in E.164 whoever writes it."""
    with pytest.raises(psycopg.errors.CheckViolation, match="users_phone_number_e164"):
        sql.execute("insert into public.users (phone_number) values ('14155550123')")
    with pytest.raises(psycopg.errors.CheckViolation, match="users_has_an_identity"):
        sql.execute("insert into public.users (full_name) values ('nobody')")


# A national trunk prefix written inside an international number. Where the country's numbering plan
# dials a 0 before national numbers (and no national number starts with 0), '(0)' is that prefix and is
# dropped; anywhere else the digit's meaning is unknown and the form is refused, never kept as a digit.
TRUNK_DROPPED = [
    ("+44 (0) 7400 123456", "+447400123456"),
    ("+49 (0)1512 3456789", "+4915123456789"),
    ("+44(0)20 7946 0958", "+442079460958"),
    ("0044 (0)20 7946 0958", "+442079460958"),
    ("+33 ( 0 ) 6 12 34 56 78", "+33612345678"),
    ("+61 (0)4 1234 5678", "+61412345678"),
    ("whatsapp:+353 (0)85 123 4567", "+353851234567"),
]

TRUNK_REFUSED = [
    (
        "+39 (0)6 1234 5678",
        "phone '+39 (0)6 1234 5678' writes a trunk prefix (0) that country code +39 does not use",
    ),
    (
        "+1 (0) 415 555 0123",
        "phone '+1 (0) 415 555 0123' writes a trunk prefix (0) that country code +1 does not use",
    ),
    ("+44 20 (0) 7946 0958", "phone '+44 20 (0) 7946 0958' has a (0) that does not follow the country code"),
    ("(0)20 7946 0958", "phone '(0)20 7946 0958' has a (0) that does not follow the country code"),
]


@pytest.mark.parametrize(
    ("raw", "expected"), TRUNK_DROPPED, ids=[f"{r!r} becomes {e}" for r, e in TRUNK_DROPPED]
)
def test_a_trunk_prefix_inside_an_international_number_is_dropped(
    sql: psycopg.Connection[dict[str, Any]], raw: str, expected: str
) -> None:
    """'(0)' after the country code of a plan that dials a trunk 0 is that prefix, not a digit of the number."""
    row = sql.execute("select private.normalize_phone(%s) as phone", (raw,)).fetchone()
    assert row == {"phone": expected}


@pytest.mark.parametrize(
    ("raw", "message"), TRUNK_REFUSED, ids=[f"{r!r} is refused" for r, _ in TRUNK_REFUSED]
)
def test_a_trunk_prefix_the_plan_does_not_explain_is_refused(
    sql: psycopg.Connection[dict[str, Any]], raw: str, message: str
) -> None:
    """'(0)' where no numbering plan makes it a trunk prefix is refused with 22023, not read as a digit."""
    with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
        sql.execute("select private.normalize_phone(%s)", (raw,))
    assert raised.value.diag.message_primary == message
    assert raised.value.diag.message_hint is not None and "(0)" in raised.value.diag.message_hint


def test_a_number_written_with_its_trunk_prefix_is_the_same_person(
    sql: psycopg.Connection[dict[str, Any]],
) -> None:
    """A profile made from '+44 (0) 7400 123456' is the one Twilio's 'whatsapp:+447400123456' finds: no second person."""
    typed = sql.execute("select id from public.get_or_create_whatsapp_user('+44 (0) 7400 123456')").fetchone()
    twilio = sql.execute(
        "select user_id as id from public.receive_whatsapp_message('SMtrunk', 'whatsapp:+447400123456', 'hi')"
    ).fetchone()
    assert typed is not None and typed == twilio
    assert sql.execute("select phone_number from public.users").fetchall() == [
        {"phone_number": "+447400123456"}
    ]
