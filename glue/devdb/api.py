"""The local API, shaped as a Supabase project's URL: `/auth/v1/*` is the real Auth server,
`/rest/v1/*` does for RPCs and plain table reads what PostgREST does in the database.

Local use only (`glue dev`), so supabase-py's `create_client(url, anon_key)` works on a
machine without Docker. The database side of each request is PostgREST's: connected as
`authenticator`, the JWT's signature checked with the project's secret, its claims in
`request.jwt.claims`, `set local role` to its role with that role's statement_timeout,
one transaction per request. Errors map to HTTP statuses as PostgREST maps them. Only what
the tour and the tests use is served: RPCs with named arguments, and `select` with `eq.`
filters and `order`; anything else answers 501 rather than pretending.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROLE_TIMEOUTS = {"anon": "3s", "authenticated": "8s"}
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.hint = status, code, message, hint

    def response(self) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "details": None, "hint": self.hint}
        return JSONResponse(body, status_code=self.status)


# PostgREST's table of SQLSTATEs (or their class) to HTTP statuses, most specific first
# (PostgREST's documentation, "Errors"); anything it does not list is 400.
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
]


def status_for(sqlstate: str, role: str) -> int:
    """The HTTP status PostgREST answers a database error with."""
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    if sqlstate == "42501":
        return 401 if role == "anon" else 403
    for prefix, status in STATUSES:
        if sqlstate.startswith(prefix):
            return status
    return 400


def claims_of(request: Request, secret: str, keys: set[str]) -> dict[str, Any]:
    """The caller's claims: a user's access token, else the API key's; as the gateway and
    PostgREST check them together (an unknown key or a bad signature is 401)."""
    if request.headers.get("apikey") not in keys:
        raise ApiError(401, "PGRST301", "No API key found in request or it is not this project's")
    token = (
        request.headers.get("authorization", "").removeprefix("Bearer ").strip() or request.headers["apikey"]
    )
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"verify_aud": False}
        )
    except jwt.PyJWTError as error:
        raise ApiError(401, "PGRST301", f"JWT invalid: {error}") from error
    if claims.get("role") not in ("anon", "authenticated", "service_role"):
        raise ApiError(401, "PGRST301", "JWT role claim is not an API role")
    return claims


def database_error(error: psycopg.Error | PoolTimeout, role: str) -> ApiError:
    """A database failure as PostgREST answers it: the statement's SQLSTATE mapped to a status,
    or 503 when the connection itself failed."""
    state = error.sqlstate if isinstance(error, psycopg.Error) else None
    if state is None:
        return ApiError(503, "PGRST000", "Could not connect with the database", str(error)[:200])
    diag = error.diag if isinstance(error, psycopg.Error) else None
    return ApiError(
        status_for(state, role),
        state,
        (diag.message_primary if diag else None) or str(error),
        diag.message_hint if diag else None,
    )


def rpc_statement(name: str, args: dict[str, Any], returns_set: bool, returns_row: bool) -> sql.Composed:
    """`select` of public.<name>(arg => value, ...) answering as PostgREST does: a set as a JSON
    array, one row as an object, a scalar as its value."""
    call = sql.SQL("public.{}({})").format(
        sql.Identifier(name),
        sql.SQL(", ").join(sql.SQL("{} => %({})s").format(sql.Identifier(k), sql.SQL(k)) for k in args),
    )
    if returns_set and returns_row:
        return sql.SQL("select coalesce(jsonb_agg(to_jsonb(t)), '[]') from {} as t").format(call)
    if returns_set:
        return sql.SQL("select coalesce(jsonb_agg(t.v), '[]') from {} as t(v)").format(call)
    if returns_row:
        return sql.SQL("select to_jsonb(t) from {} as t").format(call)
    return sql.SQL("select to_jsonb({})").format(call)


def read_statement(name: str, query: list[tuple[str, str]]) -> tuple[sql.Composed, list[Any]]:
    """A read of public.<name> from PostgREST's query syntax: `select=`, `col=eq.value`, `order=`."""
    columns = dict(query).get("select", "*")
    wanted = (
        sql.SQL("*")
        if columns == "*"
        else sql.SQL(", ").join(
            sql.Identifier(c.strip()) for c in columns.split(",") if NAME.match(c.strip())
        )
    )
    where: list[sql.Composable] = []
    params: list[Any] = []
    order: list[sql.Composable] = []
    for key, value in query:
        if key == "select":
            continue
        if key == "order":
            for part in value.split(","):
                column, _, direction = part.partition(".")
                descending = sql.SQL("desc" if direction.startswith("desc") else "asc")
                order.append(sql.SQL("{} {}").format(sql.Identifier(column), descending))
            continue
        if not NAME.match(key) or not value.startswith("eq."):
            raise ApiError(501, "PGRST000", f"the local API supports eq. filters only, not {key}={value}")
        where.append(sql.SQL("{} = %s").format(sql.Identifier(key)))
        params.append(value.removeprefix("eq."))
    statement = sql.SQL(
        "select coalesce(jsonb_agg(to_jsonb(t)), '[]') from (select {} from public.{}{}{}) as t"
    ).format(
        wanted,
        sql.Identifier(name),
        sql.SQL(" where ") + sql.SQL(" and ").join(where) if where else sql.SQL(""),
        sql.SQL(" order by ") + sql.SQL(", ").join(order) if order else sql.SQL(""),
    )
    return statement, params


class ApiDatabase:
    """The database side of one API request, as PostgREST takes it: connected as authenticator,
    the claims and the method set locally, `set local role` with that role's statement_timeout,
    one transaction."""

    def __init__(self, database_url: str) -> None:
        self.pool = AsyncConnectionPool(database_url, min_size=1, max_size=5, open=False, timeout=5)

    async def run(
        self, claims: dict[str, Any], method: str, statement: sql.Composed, params: dict[str, Any] | list[Any]
    ) -> Any:
        role = str(claims["role"])
        try:
            async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                await cur.execute(
                    "select set_config('search_path', 'public, extensions', true),"
                    " set_config('request.jwt.claims', %s, true), set_config('request.method', %s, true)",
                    (json.dumps(claims), method),
                )
                await cur.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
                if role in ROLE_TIMEOUTS:
                    timeout = sql.Literal(ROLE_TIMEOUTS[role])
                    await cur.execute(sql.SQL("set local statement_timeout = {}").format(timeout))
                await cur.execute(statement, params)
                row = await cur.fetchone()
                return row[0] if row else None
        except (psycopg.Error, PoolTimeout) as error:
            raise database_error(error, role) from error

    async def function_shape(self, name: str) -> tuple[bool, bool] | None:
        """(returns a set, returns rows) of public.<name>, or None when there is none."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                "select p.proretset, t.typtype = 'c' or t.oid = 'record'::regtype from pg_proc as p"
                " join pg_type as t on t.oid = p.prorettype"
                " where p.pronamespace = 'public'::regnamespace and p.proname = %s limit 1",
                (name,),
            )
            row = await cur.fetchone()
        return (bool(row[0]), bool(row[1])) if row else None


def auth_proxy(http: httpx.AsyncClient) -> Callable[[Request], Awaitable[Response]]:
    """/auth/v1/* passed to the Auth server as the gateway of a Supabase project passes it."""

    async def auth(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        upstream = await http.request(
            request.method,
            "/" + request.path_params["path"],
            params=request.url.query,
            content=await request.body(),
            headers=headers,
        )
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    return auth


def create_api(database_url: str, auth_url: str, secret: str, keys: set[str]) -> Starlette:
    """The app: `database_url` connects as authenticator, `auth_url` is the Auth server."""
    database = ApiDatabase(database_url)
    http = httpx.AsyncClient(base_url=auth_url, timeout=30)

    async def rpc(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            claims = claims_of(request, secret, keys)
            raw = await request.body()
            try:
                args = json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise ApiError(400, "PGRST102", "The body is not valid JSON") from None
            if not isinstance(args, dict) or not all(NAME.match(k) for k in args):
                raise ApiError(400, "PGRST102", "The body must be a JSON object of argument names")
            shape = await database.function_shape(name) if NAME.match(name) else None
            if shape is None:
                raise ApiError(404, "PGRST202", f"Could not find the function public.{name}")
            values = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in args.items()}
            result = await database.run(claims, request.method, rpc_statement(name, args, *shape), values)
        except ApiError as error:
            return error.response()
        return JSONResponse(result)

    async def table(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            if request.method != "GET" or not NAME.match(name):
                raise ApiError(501, "PGRST000", "the local API serves reads of tables only")
            claims = claims_of(request, secret, keys)
            statement, params = read_statement(name, request.query_params.multi_items())
            return JSONResponse(await database.run(claims, request.method, statement, params))
        except ApiError as error:
            return error.response()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await database.pool.open()
        try:
            yield
        finally:
            await database.pool.close()
            await http.aclose()

    return Starlette(
        routes=[
            Route(
                "/auth/v1/{path:path}", auth_proxy(http), methods=["GET", "POST", "PUT", "DELETE", "PATCH"]
            ),
            Route("/rest/v1/rpc/{name}", rpc, methods=["POST"]),
            Route("/rest/v1/{name}", table, methods=["GET", "POST", "PATCH", "DELETE"]),
        ],
        lifespan=lifespan,
    )
