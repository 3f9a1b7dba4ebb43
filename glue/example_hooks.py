"""Example reply hooks, for `glue dev` and as a template (REPLY_HOOK=glue.example_hooks:echo)."""

from __future__ import annotations

from glue.hooks import Sender
from glue.twilio_request import InboundMessage


def echo(sender: Sender, message: InboundMessage) -> str | None:
    """Answer every text message with what it said; stay silent for media-only messages."""
    text = message.body.strip()
    if not text:
        return None
    return f"You said: {text[:200]}"
