"""One structured JSON line per request. Handlers add fields to `scope["state"]["log"]`; no message
bodies, phone numbers or tokens are ever put there."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("glue.relay")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["msg"] = record.getMessage()
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging(level: str = "info") -> None:
    """Send glue's log lines as JSON to stderr (uvicorn's own access log is turned off)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


class RequestLogMiddleware:
    """Times each HTTP request and logs one line with its status and the fields the handler set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        fields: dict[str, Any] = {"method": scope["method"], "path": scope["path"]}
        scope.setdefault("state", {})["log"] = fields
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            fields["status"] = status
            fields["ms"] = round((time.perf_counter() - started) * 1000, 1)
            logger.info("request", extra={"fields": fields})
