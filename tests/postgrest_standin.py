"""A stand-in for PostgREST's RPC endpoint, so the relay contract runs through supabase-py's rpc() without Docker.

For `POST /rest/v1/rpc/<function>` it does in the database what PostgREST does (one transaction connected
as `authenticator`: the JWT claims set locally, `set local role service_role`, the function called with the
JSON body as named arguments) and answers as PostgREST does: the rows as a JSON array, or an error object
`{code, message, details, hint}` with the HTTP status PostgREST's documentation gives for the SQLSTATE
("Errors", "HTTP Status Codes"). It checks no JWT: every call is the service role's, as the relay's are.
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# PostgREST's table, most specific first: (SQLSTATE or class prefix, HTTP status).
STATUSES = [
    ("08", 503),
    ("09", 500),
    ("0L", 403),
    ("0P", 403),
    ("23503", 409),
    ("23505", 409),
    ("25006", 405),
    ("25", 500),
    ("28", 403),
    ("2D", 500),
    ("38", 500),
    ("39", 500),
    ("3B", 500),
    ("40", 500),
    ("53400", 500),
    ("53", 503),
    ("54", 500),
    ("55", 500),
    ("57", 500),
    ("58", 500),
    ("F0", 500),
    ("HV", 500),
    ("P0001", 400),
    ("P0", 500),
    ("XX", 500),
    ("42883", 404),
    ("42P01", 404),
    ("42501", 403),
]
ARGUMENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def status_for(sqlstate: str) -> int:
    """The HTTP status PostgREST answers a database error with (400 for any SQLSTATE its table does not list)."""
    for prefix, status in STATUSES:
        if sqlstate.startswith(prefix):
            return status
    return 400


def error(status: int, code: str, message: str, hint: str | None = None) -> Response:
    return JSONResponse({"code": code, "details": None, "hint": hint, "message": message}, status_code=status)


def postgrest_app(authenticator_url: str) -> Starlette:
    """The stand-in, calling functions in the database `authenticator_url` (a login as `authenticator`) points at."""

    async def rpc(request: Request) -> Response:
        function = request.path_params["function"]
        arguments: dict[str, Any] = await request.json()
        if not ARGUMENT.match(function) or not all(ARGUMENT.match(name) for name in arguments):
            return error(
                404, "PGRST202", f"Could not find the function public.{function} in the schema cache"
            )
        named = ", ".join(f"{name} => %({name})s" for name in arguments)
        values = {k: Jsonb(v) if isinstance(v, list | dict) else v for k, v in arguments.items()}
        claims = json.dumps({"role": "service_role"})
        try:
            conn = await psycopg.AsyncConnection.connect(authenticator_url, row_factory=dict_row)
        except psycopg.OperationalError as failure:
            return error(503, "PGRST000", "Could not connect with the database", str(failure)[:200])
        try:
            async with conn.transaction():
                await conn.execute(
                    "select set_config('search_path', 'public, extensions', true),"
                    " set_config('request.jwt.claims', %s, true)",
                    (claims,),
                )
                await conn.execute("set local role service_role")
                cursor = await conn.execute(f"select * from public.{function}({named})", values)
                rows = await cursor.fetchall()
        except psycopg.Error as failure:
            sqlstate = failure.sqlstate or "08000"
            return error(status_for(sqlstate), sqlstate, failure.diag.message_primary or str(failure))
        finally:
            await conn.close()
        return Response(json.dumps(rows, default=str), media_type="application/json")

    return Starlette(routes=[Route("/rest/v1/rpc/{function}", rpc, methods=["POST"])])
