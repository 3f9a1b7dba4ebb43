"""The relay's baselines, started by bench.relay as `uvicorn --factory bench.baseline_app:<name>`.

- `create`: the same server stack (uvicorn, Starlette, the relay's request-log middleware and
  JSON log line) answering the same TwiML, with no signature check and no database call. The
  issue's baseline.
- `create_floor`: that stack plus only what any relay meeting the issue must do, written as
  plainly as possible: parse the form, check the signature with twilio's RequestValidator, and
  make one database round trip (`select 1`) through a psycopg pool configured as the relay's.
  Nothing of ours (no message reading, allow-lists, RPC or receipt), so its rate is an upper
  bound for any relay that validates and stores; the relay is compared with it too.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from glue.gateway import PsycopgGateway
from glue.logs import RequestLogMiddleware, configure_logging
from glue.settings import WEBHOOK_PATH, Settings
from glue.twilio_request import SIGNATURE_HEADER, twiml


def create() -> Starlette:
    settings = Settings()
    configure_logging(settings.log_level)

    async def webhook(request: Request) -> Response:
        await request.body()
        return Response(twiml([]), media_type="text/xml")

    return Starlette(
        routes=[Route(WEBHOOK_PATH, webhook, methods=["POST"])],
        middleware=[Middleware(RequestLogMiddleware)],
    )


def create_floor() -> Starlette:
    settings = Settings()
    configure_logging(settings.log_level)
    assert settings.database_url and settings.twilio_auth_token and settings.public_base_url
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    url = settings.public_base_url.rstrip("/") + WEBHOOK_PATH
    gateway = PsycopgGateway(settings.database_url.get_secret_value(), settings.db_pool_size)

    async def webhook(request: Request) -> Response:
        form = dict(urllib.parse.parse_qsl((await request.body()).decode()))
        if not validator.validate(url, form, request.headers.get(SIGNATURE_HEADER, "")):
            return Response("invalid signature", status_code=403)
        async with gateway.pool.connection() as conn:
            await conn.execute("select 1")
        return Response(twiml([]), media_type="text/xml")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.pool.open(wait=True)
        yield
        await gateway.pool.close()

    return Starlette(
        routes=[Route(WEBHOOK_PATH, webhook, methods=["POST"])],
        middleware=[Middleware(RequestLogMiddleware)],
        lifespan=lifespan,
    )
