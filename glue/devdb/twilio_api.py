"""A local stand-in of Twilio's Messages API that the official twilio library talks to.

`glue dev` runs the outbox worker against it, and the worker's tests use it. Form-encoded POST with
Basic auth (ACCOUNT and TOKEN below), Twilio's JSON for a created message and for errors; `fail_next`
answers the next create with an error, `stall_next` accepts the next create and then stalls past the
client's timeout, as a lost response does. It sends no status callbacks: `glue simulate --status` does.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import threading
import uuid
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ACCOUNT = "AC" + "1" * 32
TOKEN = "standin-token"


class TwilioStandIn:
    """The Messages API's create, list and fetch, keeping every created message in `messages`."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.fail_next: tuple[int, int, str] | None = None
        self.stall_next = 0.0
        self.app = Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{account}/Messages.json", self.create, methods=["POST"]),
                Route("/2010-04-01/Accounts/{account}/Messages.json", self.list, methods=["GET"]),
                Route("/2010-04-01/Accounts/{account}/Messages/{sid}.json", self.fetch, methods=["GET"]),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        return request.headers.get("authorization") == expected and request.path_params["account"] == ACCOUNT

    @staticmethod
    def _error(status: int, code: int, message: str) -> Response:
        return JSONResponse(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status_code=status,
        )

    async def create(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        with self.lock:
            failure, self.fail_next = self.fail_next, None
            stall, self.stall_next = self.stall_next, 0.0
        if failure:
            return self._error(*failure)
        now = dt.datetime.now(dt.UTC)
        message = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": ACCOUNT,
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body") or "",
            "status": "queued",
            "date_created": format_datetime(now),
            "date_updated": format_datetime(now),
            "date_sent": None,
            "error_code": None,
            "uri": "",
        }
        with self.lock:
            self.messages.append(
                dict(message, content_sid=form.get("ContentSid"), callback=form.get("StatusCallback"))
            )
        if stall:
            await asyncio.sleep(stall)  # accepted, but the answer comes too late for the client
        return JSONResponse(message, status_code=201)

    def find(self, sid: str) -> dict[str, Any] | None:
        """The created message with this SID, as the API would show it, with the StatusCallback it named."""
        with self.lock:
            found = [m for m in self.messages if m["sid"] == sid]
        return dict(found[0]) if found else None

    async def list(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        to = request.query_params.get("To")
        with self.lock:
            found = [m for m in self.messages if to is None or m["to"] == to]
        return JSONResponse({"messages": found, "next_page_uri": None, "page": 0, "page_size": 50, "uri": ""})

    async def fetch(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        with self.lock:
            found = [m for m in self.messages if m["sid"] == request.path_params["sid"]]
        return JSONResponse(found[0]) if found else self._error(404, 20404, "not found")
