"""The local API that `glue dev` serves: supabase-py's `create_client` against the real Auth
server and PostgREST's database steps, the README's app tour run as a newcomer runs it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from actors import Database
from conftest import otp_for
from postgrest.exceptions import APIError
from relay_support import RelayServer, post
from supabase.lib.client_options import SyncClientOptions

from glue.devdb.api import create_api
from glue.devdb.auth import AuthServer
from glue.devdb.mail import MailCatcher
from glue.simulate import inbound_params
from supabase import Client, create_client

pytestmark = [
    pytest.mark.real_auth,
    # supabase-py itself passes postgrest-py the timeout and verify arguments postgrest-py deprecates.
    pytest.mark.filterwarnings("ignore:The 'timeout' parameter is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'verify' parameter is deprecated:DeprecationWarning"),
]

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def api(db: Database, auth_server: AuthServer) -> Iterator[RelayServer]:
    keys = {auth_server.anon_key, auth_server.service_role_key}
    with RelayServer(
        create_api(db.url("authenticator"), auth_server.url, auth_server.secret, keys)
    ) as server:
        yield server


@pytest.fixture
def supabase(api: RelayServer, auth_server: AuthServer) -> Iterator[Client]:
    """supabase-py's client on the local API, its one HTTP client closed after the test."""
    with httpx.Client(timeout=30) as http:
        options = SyncClientOptions(auto_refresh_token=False, persist_session=True, httpx_client=http)
        yield create_client(api.base, auth_server.anon_key, options)


def test_the_app_tour_with_supabase_py(
    supabase: Client, mail: MailCatcher, relay: RelayServer, client: httpx.Client, sql: Conn
) -> None:
    """WhatsApp first, then sign-up, confirmation, phone verification, link, profile, history."""
    phone = "14155557001"
    assert (
        post(client, relay.url, inbound_params(f"whatsapp:+{phone}", "hi", profile_name="Ada")).status_code
        == 200
    )
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"

    supabase.auth.sign_up({"email": email, "password": "correct horse battery"})
    supabase.auth.verify_otp({"email": email, "token": str(mail.wait_for(email).code), "type": "email"})
    supabase.auth.update_user({"phone": phone})
    supabase.auth.verify_otp({"phone": phone, "token": otp_for(phone), "type": "phone_change"})

    profile = supabase.rpc("link_whatsapp_account").execute().data
    assert (profile["phone_number"], profile["full_name"], profile["email"]) == (f"+{phone}", "Ada", email)
    history = supabase.table("whatsapp_messages").select("body, user_id").execute().data
    assert history == [{"body": "hi", "user_id": profile["id"]}]
    mine = supabase.table("users").select("id").eq("id", profile["id"]).execute().data
    assert mine == [{"id": profile["id"]}]


def test_errors_come_back_as_postgrest_sends_them(supabase: Client, mail: MailCatcher) -> None:
    """A refused link is PT412 with status 412; anon may not call it at all (401)."""
    with pytest.raises(APIError) as anon:
        supabase.rpc("link_whatsapp_account").execute()
    assert anon.value.code == "42501"
    email = f"bo-{uuid.uuid4().hex[:8]}@example.com"
    supabase.auth.sign_up({"email": email, "password": "correct horse battery"})
    supabase.auth.verify_otp({"email": email, "token": str(mail.wait_for(email).code), "type": "email"})
    with pytest.raises(APIError) as refused:
        supabase.rpc("link_whatsapp_account").execute()
    assert refused.value.code == "PT412"


def test_a_key_from_elsewhere_is_refused(api: RelayServer, auth_server: AuthServer) -> None:
    """An API key that is not this project's, or a token signed with another secret: 401, no query."""
    forged = auth_server.anon_key[:-4] + "AAAA"
    for headers in (
        {"apikey": forged},
        {"apikey": auth_server.anon_key, "Authorization": f"Bearer {forged}"},
    ):
        response = httpx.post(f"{api.base}/rest/v1/rpc/link_whatsapp_account", headers=headers, json={})
        assert response.status_code == 401, headers
