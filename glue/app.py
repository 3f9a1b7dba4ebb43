"""The ASGI app: POST /twilio/webhook, GET /healthz, GET /readyz.

A webhook is answered in this order, and nothing touches the database before step 3:
1. read the body (413 over MAX_BODY_BYTES) and the form (415 if it is not a form);
2. check X-Twilio-Signature against the URL Twilio called (403), then the AccountSid/To allow-lists (403);
3. read the message (400 without From or MessageSid; an SMS, From without whatsapp:, gets an empty 200
   and is not stored), one RPC call (400 when the database refuses the phone, 503 with Retry-After when
   it is unreachable or late);
4. 200 with TwiML: the welcome reply when this MessageSid created the user, then either what a link
   code or its YES did (glue/link_codes.py) or the hook's reply (first delivery only).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from glue.errors import BadRequest, DatabaseUnavailable, InputRejected, RelayError
from glue.gateway import Gateway, Receipt
from glue.hooks import ReplyHook, Sender, load_hook, run_hook
from glue.link_codes import link_reply
from glue.logs import RequestLogMiddleware
from glue.settings import WEBHOOK_PATH, Settings
from glue.status_callback import STATUS_PATH, status_endpoint
from glue.twilio_request import InboundMessage, read_message, twiml, verified_form

TWIML_TYPE = "text/xml"


async def replies_to(
    receipt: Receipt,
    message: InboundMessage,
    hook: ReplyHook | None,
    settings: Settings,
    fields: dict[str, Any],
) -> list[str]:
    """What the relay answers: the welcome for a new sender, a consent or link-code confirmation,
    else the application's hook (never for a redelivery)."""
    replies: list[str] = []
    if receipt.user_created and settings.welcome_reply:
        replies.append(settings.welcome_reply)
    if receipt.consent_reply:
        replies.append(receipt.consent_reply)
    if receipt.link_code is not None:
        # A link code or its YES: the database has acted on it, the reply says what happened, and
        # the hook (the application's conversation) does not see it.
        fields["link_code"] = receipt.link_code
        replies.append(link_reply(receipt.link_code, receipt.link_account))
    # A consent keyword is answered by its confirmation alone: nothing else after a STOP.
    elif hook is not None and not receipt.duplicate and not receipt.consent_reply:
        sender = Sender(receipt.user_id, receipt.user_created, message.sender, message.profile_name)
        try:
            reply = await run_hook(hook, sender, message, settings.hook_timeout)
        except TimeoutError:
            fields["hook"] = "timeout"
        except Exception as error:
            fields["hook"] = "failed"
            fields["hook_error"] = type(error).__name__
        else:
            fields["hook"] = "replied" if reply else "silent"
            if reply:
                replies.append(reply)
    return replies


def relay_error_handler(settings: Settings) -> Callable[[Request, Exception], Awaitable[Response]]:
    """RelayError to its status and plain-text message; a 503 carries Retry-After."""

    async def relay_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RelayError)
        request.state.log.setdefault("reason", error.reason)
        headers = {}
        if isinstance(error, DatabaseUnavailable):
            headers["Retry-After"] = str(settings.retry_after_seconds)
            # The operator's clue (42501 for a login without the grant, 40P01 for a deadlock...);
            # the SQLSTATE only, never the database's message, which may quote the request.
            cause = error.__cause__
            sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "code", None)  # psycopg, PostgREST
            if sqlstate:
                request.state.log["sqlstate"] = sqlstate
        return PlainTextResponse(error.message, status_code=error.status, headers=headers)

    return relay_error


def readiness(gateway: Gateway) -> Callable[[Request], Awaitable[Response]]:
    """GET /readyz: 200 when the database answers, else 503 with the reason logged."""

    async def readyz(request: Request) -> Response:
        try:
            await gateway.check_ready()
        except DatabaseUnavailable as error:
            request.state.log["reason"] = "not_ready"
            return PlainTextResponse(f"not ready: {error.message}", status_code=503)
        except Exception as error:
            request.state.log["reason"] = type(error).__name__
            return PlainTextResponse("not ready: the database check failed", status_code=503)
        return PlainTextResponse("ready")

    return readyz


def create_app(settings: Settings, gateway: Gateway, hook: ReplyHook | None = None) -> Starlette:
    """The relay, built from its settings and its database gateway (opened and closed in the lifespan).

    `hook` overrides REPLY_HOOK (tests and embedding applications pass a callable directly).
    """
    tokens = settings.auth_tokens()
    if not tokens:
        raise ValueError("TWILIO_AUTH_TOKEN is not set: every request would be refused")
    if problem := settings.public_url_problem():
        raise ValueError(problem)
    validators = [RequestValidator(token) for token in tokens]
    if hook is None and settings.reply_hook:
        hook = load_hook(settings.reply_hook)

    async def webhook(request: Request) -> Response:
        fields: dict[str, Any] = request.state.log
        message = read_message(await verified_form(request, settings, validators, fields))
        fields["message_sid"] = message.message_sid
        if not message.is_whatsapp:
            # An SMS to the same number: its sender id can be spoofed on some routes, so it never
            # stands for the WhatsApp user. Twilio gets an empty answer (no retry, no fallback call).
            fields["reason"] = "not_whatsapp"
            return Response(twiml([]), media_type=TWIML_TYPE)
        try:
            receipt = await gateway.receive(message)
        except InputRejected as error:
            fields["reason"] = "rejected_by_database"
            raise BadRequest(error.message[:200]) from error
        fields.update(
            user_id=str(receipt.user_id), user_created=receipt.user_created, duplicate=receipt.duplicate
        )
        return Response(
            twiml(await replies_to(receipt, message, hook, settings, fields)), media_type=TWIML_TYPE
        )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.open()
        try:
            yield
        finally:
            await gateway.close()

    status = status_endpoint(settings, validators, gateway.record_status)
    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, webhook, methods=["POST"]),
            Route(STATUS_PATH, status, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readiness(gateway), methods=["GET"]),
        ],
        middleware=[Middleware(RequestLogMiddleware)],
        exception_handlers={RelayError: relay_error_handler(settings)},
        lifespan=lifespan,
    )


def app_from_environment() -> Starlette:
    """The uvicorn factory for `glue serve`: settings from the environment, gateway chosen by them."""
    from glue.gateway import gateway_from_settings
    from glue.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings, gateway_from_settings(settings))
