"""A local mail catcher for the Auth server's confirmation mails, as the CLI's stack has one.

With email confirmations on (supabase/config.toml), sign-up and email change send a mail;
here it is kept in memory, so `glue dev` can print the link and tests can read the code.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from glue.devdb.server import free_port

_TOKEN = re.compile(r"[?&]token=([0-9a-f]+)")
_CODE = re.compile(r"\b(\d{6})\b")


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str

    @property
    def link_token(self) -> str | None:
        """The token hash in the mail's verify link (for `verify_otp(token_hash=...)`)."""
        found = _TOKEN.search(self.body)
        return found.group(1) if found else None

    @property
    def code(self) -> str | None:
        """The six-digit code the mail carries, if any."""
        found = _CODE.search(self.body)
        return found.group(1) if found else None


class _Keep:
    def __init__(self, box: MailCatcher) -> None:
        self._box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        part = parsed.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        self._box.add(Mail(tuple(a.lower() for a in envelope.rcpt_tos), str(parsed["subject"] or ""), body))
        return "250 OK"


class MailCatcher:
    """An SMTP server on loopback that keeps every mail it is given."""

    def __init__(self, port: int = 0, on_mail: Callable[[Mail], None] | None = None) -> None:
        self.port = port or free_port()
        self._on_mail = on_mail
        self._mails: list[Mail] = []
        self._changed = threading.Condition()
        self._controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def add(self, mail: Mail) -> None:
        with self._changed:
            self._mails.append(mail)
            self._changed.notify_all()
        if self._on_mail is not None:
            self._on_mail(mail)

    def mails_to(self, address: str) -> list[Mail]:
        with self._changed:
            return [m for m in self._mails if address.lower() in m.to]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> Mail:
        """The `count`-th mail to `address`, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                mails = [m for m in self._mails if address.lower() in m.to]
                if len(mails) >= count:
                    return mails[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no mail number {count} to {address} within {timeout}s")
                self._changed.wait(left)
