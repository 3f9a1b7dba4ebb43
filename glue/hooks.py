"""The reply hook: an application's callable, named in REPLY_HOOK as "package.module:callable".

It is called once per stored message (never for a redelivery) with the sender and the message,
and returns the reply text or None. It may be a plain function (run in a worker thread) or a
coroutine function. It runs after the message is committed, within HOOK_TIMEOUT; if it fails or is
late, the relay answers without its reply and logs hook=failed/timeout.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from glue.twilio_request import InboundMessage


@dataclass(frozen=True)
class Sender:
    """The sender's row in public.users as the relay knows it."""

    user_id: uuid.UUID
    created: bool
    phone: str
    profile_name: str | None


ReplyHook = Callable[[Sender, InboundMessage], "str | Awaitable[str | None] | None"]


def load_hook(spec: str) -> ReplyHook:
    """Import "package.module:callable" and return the callable."""
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    hook: Any = module
    for part in attribute.split("."):
        hook = getattr(hook, part)
    if not callable(hook):
        raise TypeError(f"REPLY_HOOK {spec} is not callable")
    return hook  # type: ignore[no-any-return]


async def run_hook(hook: ReplyHook, sender: Sender, message: InboundMessage, timeout: float) -> str | None:
    """The hook's reply; raises TimeoutError when it takes longer than `timeout`."""
    async with asyncio.timeout(timeout):
        if inspect.iscoroutinefunction(hook):
            result = await hook(sender, message)
        else:
            result = await run_in_threadpool(hook, sender, message)
            if inspect.isawaitable(result):
                result = await result
    if result is not None and not isinstance(result, str):
        raise TypeError(f"the reply hook returned {type(result).__name__}, not str or None")
    return result or None
