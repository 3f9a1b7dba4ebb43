"""Bad requests to the local API answer as PostgREST would, with a status and a code, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from actors import Database
from relay_support import RelayServer

from glue.devdb.api import create_api
from glue.devdb.auth import LOCAL_JWT_SECRET, api_key

SERVICE = api_key("service_role")
HEADERS = {"apikey": SERVICE, "Authorization": f"Bearer {SERVICE}"}


@pytest.fixture
def api(db: Database) -> Iterator[str]:
    app = create_api(db.url("authenticator"), "http://127.0.0.1:9", LOCAL_JWT_SECRET, {SERVICE})
    with RelayServer(app) as server:
        yield server.base


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/rest/v1/rpc/get_or_create_whatsapp_user", b"{", 400, "PGRST102"),
        ("POST", "/rest/v1/rpc/get_or_create_whatsapp_user", b"[1]", 400, "PGRST102"),
        ("POST", "/rest/v1/rpc/get_or_create_whatsapp_user", b'{"bad name": 1}', 400, "PGRST102"),
        ("POST", "/rest/v1/rpc/no_such_function", b"{}", 404, "PGRST202"),
        ("POST", "/rest/v1/rpc/get_or_create_whatsapp_user", b'{"phone": "not a phone"}', 400, "22023"),
        ("GET", "/rest/v1/users?id=gt.0", b"", 501, "PGRST000"),
        ("DELETE", "/rest/v1/users", b"", 501, "PGRST000"),
    ],
    ids=[
        "broken JSON",
        "not an object",
        "argument name",
        "unknown function",
        "refused value",
        "filter",
        "write",
    ],
)
def test_a_bad_request_gets_a_status_and_a_code(
    api: str, method: str, path: str, body: bytes, status: int, code: str
) -> None:
    """Each is refused with PostgREST's status and code in the JSON body, and nothing is written."""
    response = httpx.request(method, api + path, content=body, headers=HEADERS, timeout=30)
    assert (response.status_code, response.json()["code"]) == (status, code)
