"""The way to the database: one call of public.receive_whatsapp_message per webhook.

Two implementations of one small protocol, chosen by configuration:
- `PsycopgGateway` (DATABASE_URL): a psycopg 3 async pool. No server-side prepared statements
  (`prepare_threshold=None`), so it works through Supabase's transaction pooler on port 6543.
- `SupabaseGateway` (SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY): supabase-py's rpc() via PostgREST.
Both follow one rule, as the Edge Function does (tests/contract/ holds all three to it):
- SQLSTATE 22023 (a refused phone or MessageSid): `InputRejected`, which the app answers 400;
- a transaction rolled back (class 40: a serialization failure, a deadlock) or a lost connection:
  the call is made once more (the RPC is idempotent by MessageSid);
- anything else, the second failure, or no answer within DB_TIMEOUT: `DatabaseUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from glue.errors import DatabaseUnavailable, InputRejected
from glue.settings import Settings
from glue.status_callback import StatusReport
from glue.twilio_request import InboundMessage

RPC = "receive_whatsapp_message"
# How long the pool keeps retrying one failed connection attempt. psycopg_pool's default (5 minutes,
# with backoff doubling from 1 s) leaves the relay answering 503 for up to as long again as an outage
# lasted; with a short window each new request starts a fresh attempt, so the relay is back within
# about this long of the database (and at most one growth attempt runs at a time).
RECONNECT_WINDOW = 0.5
RPC_SIGNATURE = "public.receive_whatsapp_message(text, text, text, text, jsonb, text)"
BAD_ARGUMENT = "22023"
# Connection failures as the server (57P0x: shut down, starting up) or PostgREST (PGRST000/001) reports them.
CONNECTION_LOST = {"57P01", "57P02", "57P03", "PGRST000", "PGRST001"}


def worth_another_try(sqlstate: str | None) -> bool:
    """True for a failure a second call may not meet: a rolled-back transaction or a lost connection.

    None is a failure without a SQLSTATE: the connection broke before the server answered.
    """
    return sqlstate is None or sqlstate[:2] in ("08", "40") or sqlstate in CONNECTION_LOST


@dataclass(frozen=True)
class Receipt:
    """What the database did with one delivery; for a redelivery, what the first delivery did."""

    user_id: uuid.UUID
    message_id: uuid.UUID
    user_created: bool
    duplicate: bool
    # The confirmation of a consent keyword (STOP, START ...), to send back; None for other messages.
    consent_reply: str | None = None
    # What a link code or its confirmation did (code_held, linked, code_expired, ...); None for any
    # other message. link_account is the account it links to, masked (a***@example.com).
    link_code: str | None = None
    link_account: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Receipt:
        return cls(
            user_id=uuid.UUID(str(row["user_id"])),
            message_id=uuid.UUID(str(row["message_id"])),
            user_created=bool(row["user_created"]),
            duplicate=bool(row["duplicate"]),
            consent_reply=row.get("consent_reply"),
            link_code=row.get("link_code"),
            link_account=row.get("link_account"),
        )


def rpc_arguments(message: InboundMessage) -> dict[str, Any]:
    """The RPC's arguments by name, as PostgREST and the SQL call both take them."""
    return {
        "message_sid": message.message_sid,
        "phone": message.phone,
        "body": message.body,
        "profile_name": message.profile_name,
        "media": [m.as_json() for m in message.media],
        "whatsapp_user_id": message.whatsapp_user_id,
    }


class Gateway(Protocol):
    """What the app needs from the database."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def receive(self, message: InboundMessage) -> Receipt: ...

    async def record_status(self, report: StatusReport) -> str | None:
        """Apply a status callback; the message's status now, or None when it is not in the outbox."""

    async def check_ready(self) -> None:
        """Return when the database answers and the RPC is callable; raise DatabaseUnavailable otherwise."""


class PsycopgGateway:
    """receive_whatsapp_message over a psycopg async pool, one statement (one round trip) per call."""

    SQL = (
        "select user_id, message_id, user_created, duplicate, consent_reply, link_code, link_account"
        " from public.receive_whatsapp_message("
        "message_sid => %(message_sid)s, phone => %(phone)s, body => %(body)s,"
        " profile_name => %(profile_name)s, media => %(media)s::jsonb,"
        " whatsapp_user_id => %(whatsapp_user_id)s)"
    )
    READY_SQL = (
        "select p is not null as present, p is not null and has_function_privilege(p, 'execute') as callable"
        " from to_regprocedure(%s) as p"
    )

    def __init__(self, conninfo: str, pool_size: int = 10, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=min(2, pool_size),
            max_size=pool_size,
            open=False,
            timeout=timeout,
            reconnect_timeout=RECONNECT_WINDOW,
            kwargs={"autocommit": True, "prepare_threshold": None, "connect_timeout": max(1, int(timeout))},
            name="glue",
        )

    async def open(self) -> None:
        # Do not wait: the relay starts (and /readyz says why it is not ready) while the database is down.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def _fetch_one(self, query: str, params: Any) -> dict[str, Any]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            row = await cur.fetchone()
            assert row is not None
            return row

    async def _attempt(self, query: str, params: Any) -> dict[str, Any]:
        try:
            return await self._fetch_one(query, params)
        except psycopg.Error as error:
            # A connection the pool handed out may have died with a restarted server, or the
            # database asked for the call to be run again (a serialization failure, a deadlock).
            # The RPC is idempotent by MessageSid, so one more try is safe; a second failure is a
            # 503, and Twilio retries.
            if not worth_another_try(error.sqlstate):
                raise
            return await self._fetch_one(query, params)

    async def _call(self, query: str, params: Any) -> dict[str, Any]:
        # The attempt is its own task, abandoned at the deadline. Cancelling the request's own task
        # (asyncio.timeout) is not enough: on Python 3.11 a cancellation that coincides with the pool
        # handing over a connection is swallowed (asyncio.wait_for, bpo-42130), and the request then
        # waits as long as the database does.
        attempt = asyncio.ensure_future(self._attempt(query, params))
        try:
            done, _ = await asyncio.wait({attempt}, timeout=self.timeout)
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        if not done:
            attempt.cancel()
            attempt.add_done_callback(lambda task: task.cancelled() or task.exception())
            raise DatabaseUnavailable("database unavailable")
        try:
            return attempt.result()
        except psycopg.Error as error:
            if error.sqlstate == BAD_ARGUMENT:
                raise InputRejected(error.diag.message_primary or "bad argument") from error
            # Anything else the database says (a deadlock or serialization failure under a race, a
            # trigger the application added, an outage) is the database's problem, not the request's:
            # 503 makes Twilio deliver again, and the RPC makes that redelivery harmless. Never a 500.
            raise DatabaseUnavailable("database unavailable") from error
        except TimeoutError as error:  # a timeout raised within the attempt itself
            raise DatabaseUnavailable("database unavailable") from error

    async def receive(self, message: InboundMessage) -> Receipt:
        params = rpc_arguments(message)
        params["media"] = json.dumps(params["media"])
        return Receipt.from_row(await self._call(self.SQL, params))

    # Always one row, so that a callback for a message outside the outbox reads as None.
    STATUS_SQL = (
        "select (select status from public.record_whatsapp_status(message_sid => %(message_sid)s,"
        " message_status => %(message_status)s, error_code => %(error_code)s,"
        " outbound_message_id => %(outbound_message_id)s::uuid)) as status"
    )

    async def record_status(self, report: StatusReport) -> str | None:
        row = await self._call(self.STATUS_SQL, report.rpc_arguments())
        return row["status"]  # type: ignore[no-any-return]

    async def check_ready(self) -> None:
        row = await self._call(self.READY_SQL, (RPC_SIGNATURE,))
        if not row["present"]:
            raise DatabaseUnavailable(f"{RPC_SIGNATURE} is missing: apply the migrations")
        if not row["callable"]:
            raise DatabaseUnavailable(f"this login may not execute {RPC_SIGNATURE}")


class SupabaseGateway:
    """receive_whatsapp_message through PostgREST with supabase-py, as the service role."""

    def __init__(self, url: str, service_role_key: str, timeout: float = 5.0) -> None:
        self.url = url
        self.key = service_role_key
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._client: Any = None

    async def open(self) -> None:
        from supabase import AsyncClientOptions, acreate_client

        # Our own httpx client, so close() really closes every connection it opened.
        self._http = httpx.AsyncClient(timeout=self.timeout)
        options = AsyncClientOptions(
            httpx_client=self._http,
            postgrest_client_timeout=self.timeout,
            auto_refresh_token=False,
            persist_session=False,
        )
        self._client = await acreate_client(self.url, self.key, options)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._client = None

    async def _attempt(self, arguments: dict[str, Any]) -> Any:
        from postgrest.exceptions import APIError

        try:
            return (await self._client.rpc(RPC, arguments).execute()).data
        except (APIError, httpx.TransportError) as error:
            # The same one more try as PsycopgGateway's: a transport error is a lost connection.
            code = error.code if isinstance(error, APIError) else None
            if not worth_another_try(code):
                raise
            return (await self._client.rpc(RPC, arguments).execute()).data

    async def _rpc(self, arguments: dict[str, Any]) -> Any:
        from postgrest.exceptions import APIError

        if self._client is None:
            raise DatabaseUnavailable("gateway not open")
        try:
            async with asyncio.timeout(self.timeout):
                return await self._attempt(arguments)
        except APIError as error:
            if error.code == BAD_ARGUMENT:
                raise InputRejected(error.message or "bad argument") from error
            # Whatever else PostgREST or the database says (PostgREST turns a serialization failure
            # into a 500 and a trigger's exception into a 400) is the database's problem, not the
            # request's: 503 makes Twilio deliver again, as the psycopg path does. Never a 500.
            raise DatabaseUnavailable("database unavailable") from error
        except (TimeoutError, httpx.TransportError) as error:
            raise DatabaseUnavailable("database unavailable") from error

    async def receive(self, message: InboundMessage) -> Receipt:
        rows = await self._rpc(rpc_arguments(message))
        row = rows[0] if isinstance(rows, list) else rows
        return Receipt.from_row(row)

    async def record_status(self, report: StatusReport) -> str | None:
        from postgrest.exceptions import APIError

        if self._client is None:
            raise DatabaseUnavailable("gateway not open")
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.rpc("record_whatsapp_status", report.rpc_arguments()).execute()
        except APIError as error:
            if error.code == BAD_ARGUMENT:
                raise InputRejected(error.message or "bad argument") from error
            raise DatabaseUnavailable("database unavailable") from error
        except (TimeoutError, httpx.TransportError) as error:
            raise DatabaseUnavailable("database unavailable") from error
        rows = response.data or []
        return str(rows[0]["status"]) if rows else None

    async def check_ready(self) -> None:
        # A call the RPC refuses before writing anything: 22023 proves it is there and callable.
        try:
            await self._rpc({"message_sid": "", "phone": "", "body": ""})
        except InputRejected:
            return
        raise DatabaseUnavailable(f"{RPC} did not refuse an empty MessageSid")


def gateway_from_settings(settings: Settings) -> PsycopgGateway | SupabaseGateway:
    """The gateway the configuration selects (DATABASE_URL first)."""
    kind = settings.gateway_kind()
    if kind == "psycopg":
        assert settings.database_url is not None
        return PsycopgGateway(
            settings.database_url.get_secret_value(), settings.db_pool_size, settings.db_timeout
        )
    if kind == "supabase":
        assert settings.supabase_url is not None and settings.supabase_service_role_key is not None
        return SupabaseGateway(
            settings.supabase_url, settings.supabase_service_role_key.get_secret_value(), settings.db_timeout
        )
    raise ValueError("set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
