"""The relay's baseline: the same server stack (uvicorn, Starlette, the relay's request-log
middleware and JSON log line) answering the same TwiML, with no signature check and no
database call. Started by bench.relay as `uvicorn --factory bench.baseline_app:create`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from glue.logs import RequestLogMiddleware, configure_logging
from glue.settings import WEBHOOK_PATH, Settings
from glue.twilio_request import twiml


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
