"""The relay contract, as data: every case in tests/contract/cases/ against glue's relay, served by a real
uvicorn on a loopback port with a fresh real database per case, once through each of its ways to the
database: psycopg (DATABASE_URL) and supabase-py's rpc() (SUPABASE_URL; glue dev's local API,
glue/devdb/api.py, answers for PostgREST).

tests/test_edge_function.py runs the very same cases against the Edge Function's handler with `deno test`
(supabase/functions/whatsapp-webhook/contract.test.ts), so the two relays cannot drift apart.
tests/contract/README.md describes a case.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from actors import Database
from relay_support import RelayServer
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

from glue.app import create_app
from glue.devdb.api import create_api
from glue.devdb.auth import LOCAL_JWT_SECRET, api_key
from glue.devdb.server import free_port
from glue.gateway import Gateway, PsycopgGateway, SupabaseGateway
from glue.settings import WEBHOOK_PATH, Settings
from glue.status_callback import STATUS_PATH

CONTRACT = Path(__file__).resolve().parent / "contract"
SETTINGS: dict[str, Any] = json.loads((CONTRACT / "settings.json").read_text())
PUBLIC_URL: str = SETTINGS["public_url"]
# glue serves status callbacks beside the webhook, at PUBLIC_BASE_URL + /twilio/status.
PUBLIC_STATUS_URL = PUBLIC_URL.removesuffix(WEBHOOK_PATH) + STATUS_PATH
CASES = sorted((CONTRACT / "cases").glob("*.json"))
ORDER = {
    "users": "created_at, phone_number",
    "whatsapp_messages": "received_at, message_sid",
    "whatsapp_number_reassignments": "created_at, phone_number",
    "user_merges": "created_at, outcome",
    "outbound_messages": "queued_at, id",
}
GATEWAYS = ["psycopg", "supabase"]
SERVICE_KEY = api_key("service_role")

Pairs = list[tuple[str, str]]


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


def value(raw: Any) -> str:
    """A parameter value: a string, or {"repeat": s, "times": n} for long ones."""
    if isinstance(raw, dict):
        return str(raw["repeat"]) * int(raw["times"])
    return str(raw)


def pairs(params: Any) -> Pairs:
    """A case's parameters, an object or a list of [name, value] pairs (for repeated names), as pairs."""
    items = params.items() if isinstance(params, dict) else params
    return [(str(name), value(raw)) for name, raw in items]


def signature_headers(request: dict[str, Any], sent: Pairs, internal_url: str) -> dict[str, str]:
    """The X-Twilio-Signature the case asks for, computed with the twilio library as Twilio signs."""
    spec = request.get("signature", {})
    if spec is None:
        return {}
    if "header" in spec:
        return {"X-Twilio-Signature": spec["header"]}
    query = f"?{request['query']}" if request.get("query") else ""
    public = PUBLIC_STATUS_URL if request.get("route") == "status" else PUBLIC_URL
    url = {
        "public": public + query,
        "public_without_query": public,
        "internal": internal_url + query,
    }.get(spec.get("url", "public"), spec.get("url"))
    signed = pairs(spec["params"]) if "params" in spec else sent
    token = SETTINGS["tokens"][spec.get("token", "primary")]
    signature = RequestValidator(token).compute_signature(url, ImmutableMultiDict(signed))
    return {"X-Twilio-Signature": signature}


def send(client: httpx.Client, relay: RelayServer, request: dict[str, Any]) -> httpx.Response:
    """One request of a case, as the case describes it, to the webhook or (route "status") the status route."""
    relay_url = relay.base + STATUS_PATH if request.get("route") == "status" else relay.url
    sent = pairs(request.get("params", []))
    body = request["raw_body"] if "raw_body" in request else urlencode(sent)
    headers = signature_headers(request, sent, relay_url)
    content_type = request.get("content_type", "application/x-www-form-urlencoded")
    if content_type is not None:
        headers["Content-Type"] = content_type
    url = relay_url + (f"?{request['query']}" if request.get("query") else "")
    data = body.encode()

    def chunks() -> Iterator[bytes]:
        yield data

    content: bytes | Iterator[bytes] = chunks() if request.get("chunked") else data
    if request.get("method", "POST") != "POST":
        return client.request(request["method"], url, headers=headers)
    return client.post(url, content=content, headers=headers)


def check_response(response: httpx.Response, expect: dict[str, Any], where: str) -> None:
    """The status, content type, body and headers the case expects, exactly."""
    actual: dict[str, Any] = {"status": response.status_code}
    wanted: dict[str, Any] = {"status": expect["status"]}
    if "content_type" in expect:
        actual["content_type"], wanted["content_type"] = (
            response.headers.get("content-type"),
            expect["content_type"],
        )
    if "body" in expect:
        actual["body"], wanted["body"] = response.text, expect["body"]
    for name, expected in expect.get("headers", {}).items():
        actual[name], wanted[name] = response.headers.get(name), expected
    assert actual == wanted, where


def stored(db: Database, expected: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The rows of each table the case names, each cut down to the columns the case lists for it."""
    found: dict[str, list[dict[str, Any]]] = {}
    with db.connect("postgres") as conn:
        for table, rows in expected.items():
            actual = [
                r["row"]
                for r in conn.execute(
                    f"select to_jsonb(t) as row from public.{table} as t order by {ORDER[table]}"
                )
            ]
            found[table] = [{k: a.get(k) for k in e} for a, e in zip(actual, rows, strict=False)]
            found[table] += actual[len(rows) :]  # rows nobody expected, in full
    return found


@contextlib.contextmanager
def glue_relay(case: dict[str, Any], db: Database, kind: str) -> Iterator[RelayServer]:
    """glue's relay configured as the case says, with PUBLIC_BASE_URL making PUBLIC_URL the signed URL."""
    assert PUBLIC_URL.endswith(WEBHOOK_PATH)
    env = {**SETTINGS["env"], **case.get("env", {}), "PUBLIC_BASE_URL": PUBLIC_URL.removesuffix(WEBHOOK_PATH)}
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]
    with db.connect("postgres") as conn:
        for statement in case.get("setup_sql", []):
            conn.execute(statement)
    unreachable = f"127.0.0.1:{free_port()}"
    with contextlib.ExitStack() as stack:
        gateway: Gateway
        if kind == "psycopg":
            url = db.url("postgres")
            if case.get("database") == "unreachable":
                url = f"postgresql://postgres:postgres@{unreachable}/postgres"
            gateway = PsycopgGateway(url, pool_size=4, timeout=settings.db_timeout)
        else:
            base = f"http://{unreachable}"
            if case.get("database") != "unreachable":
                api = create_api(
                    db.url("authenticator"), "http://127.0.0.1:9", LOCAL_JWT_SECRET, {SERVICE_KEY}
                )
                base = stack.enter_context(RelayServer(api)).base
            gateway = SupabaseGateway(base, SERVICE_KEY, timeout=settings.db_timeout)
        yield stack.enter_context(RelayServer(create_app(settings, gateway)))


@pytest.mark.parametrize("kind", GATEWAYS)
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_glue_relay_keeps_the_contract(path: Path, kind: str, db: Database) -> None:
    """glue's relay, through either way to the database, answers each request as expected and leaves exactly the expected rows."""
    case = load(path)
    with glue_relay(case, db, kind) as relay, httpx.Client(timeout=30) as client:
        for index, request in enumerate(case["requests"]):
            where = f"{path.stem}, request {index}"
            if request.get("lock_messages_table"):
                with db.connect("postgres", autocommit=False) as locker:
                    locker.execute("lock table public.whatsapp_messages in access exclusive mode")
                    response = send(client, relay, request)
                    locker.rollback()
            else:
                response = send(client, relay, request)
            check_response(response, request["expect"], where)
    if "stored" in case:
        assert stored(db, case["stored"]) == case["stored"]


def test_every_case_is_described_and_asserts_something() -> None:
    """Each case has a one-sentence description, at least one request, and an expected status for each."""
    problems = [
        path.stem
        for path in CASES
        for case in [load(path)]
        if not case.get("description", "").endswith(".")
        or not case.get("requests")
        or any("status" not in r.get("expect", {}) for r in case["requests"])
    ]
    assert problems == []


@pytest.mark.parametrize("vector", SETTINGS["signature_vectors"], ids=lambda v: v["source"])
def test_signature_vectors_are_what_twilio_computes(vector: dict[str, Any]) -> None:
    """The known-good signatures both suites check their signing against are what the twilio library computes."""
    params = ImmutableMultiDict(pairs(vector["params"]))
    validator = RequestValidator(vector["token"])
    assert validator.compute_signature(vector["url"], params) == vector["signature"]


def test_stored_rows_are_compared_column_by_column(db: Database) -> None:
    """The runner's row check keeps the listed columns of expected rows and shows unexpected rows in full."""
    with db.connect("postgres") as conn:
        conn.execute("select public.receive_whatsapp_message('SM1', '+14155550123', 'one')")
        conn.execute("select public.receive_whatsapp_message('SM2', '+14155550123', 'two')")
    expected = {
        "users": [{"phone_number": "+14155550123"}],
        "whatsapp_messages": [{"body": "one"}, {"body": "two"}],
    }
    assert stored(db, expected) == expected
    [first, unexpected] = stored(db, {"whatsapp_messages": [{"body": "one"}]})["whatsapp_messages"]
    assert (first, unexpected["body"], unexpected["message_sid"]) == ({"body": "one"}, "two", "SM2")
