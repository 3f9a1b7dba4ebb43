"""The relay with WhatsApp usernames: a From that carries a BSUID is stored, never refused."""

from __future__ import annotations

import httpx
from actors import Database
from relay_support import WELCOME, HookRecorder, RelayServer, count, post, twiml

from glue.simulate import inbound_params

BSUID = "US.13491208655302741918"


def bsuid_params(body: str, *, sender: str, external_user_id: str | None) -> dict[str, str]:
    params = inbound_params("+10000000000", body)
    params["From"] = sender
    params.pop("WaId")
    if external_user_id is not None:
        params["ExternalUserId"] = external_user_id
    return params


def stored_profiles(db: Database) -> list[tuple[str | None, str | None, int]]:
    with db.connect("postgres") as conn:
        rows = conn.execute(
            "select u.phone_number, u.whatsapp_user_id,"
            " (select count(*) from public.whatsapp_messages m where m.user_id = u.id) as n from public.users u"
        ).fetchall()
    return [(r["phone_number"], r["whatsapp_user_id"], r["n"]) for r in rows]


def test_a_bsuid_in_from_is_stored_and_welcomed(
    relay: RelayServer, client: httpx.Client, db: Database, hook: HookRecorder
) -> None:
    """Twilio puts the BSUID in From when WhatsApp withholds the phone: 200, stored, welcomed."""
    params = bsuid_params("hi", sender=f"whatsapp:{BSUID}", external_user_id=BSUID)
    response = post(client, relay.url, params)
    assert response.status_code == 200
    assert response.text == twiml(WELCOME, "echo: hi")
    assert stored_profiles(db) == [(None, BSUID, 1)]


def test_external_user_id_is_recorded_next_to_the_phone(
    relay: RelayServer, client: httpx.Client, db: Database
) -> None:
    """A message with both a phone in From and ExternalUserId gives one profile holding both."""
    params = inbound_params("+14155550160", "hi")
    params["ExternalUserId"] = BSUID
    assert post(client, relay.url, params).status_code == 200
    assert stored_profiles(db) == [("+14155550160", BSUID, 1)]


def test_the_late_phone_merges_the_bsuid_sender(
    relay: RelayServer, client: httpx.Client, db: Database
) -> None:
    """A BSUID-only sender and the phone's profile become one when a message carries both."""
    for params in (
        inbound_params("+14155550161", "by phone"),
        bsuid_params("by username", sender=f"whatsapp:{BSUID}", external_user_id=BSUID),
    ):
        assert post(client, relay.url, params).status_code == 200
    assert len(stored_profiles(db)) == 2
    both = inbound_params("+14155550161", "both")
    both["ExternalUserId"] = BSUID
    assert post(client, relay.url, both).status_code == 200
    assert stored_profiles(db) == [("+14155550161", BSUID, 3)]


def test_a_malformed_bsuid_is_400_and_stores_nothing(
    relay: RelayServer, client: httpx.Client, db: Database
) -> None:
    """An ExternalUserId that is not a BSUID is refused with 400 naming the field."""
    params = bsuid_params("hi", sender="whatsapp:US.bad-id", external_user_id="US.bad-id")
    response = post(client, relay.url, params)
    assert response.status_code == 400
    assert "whatsapp_user_id" in response.text
    assert (count(db, "users"), count(db, "whatsapp_messages")) == (0, 0)
