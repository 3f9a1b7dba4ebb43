"""The relay's replies to link codes: what the database did with a code or its YES, in plain words.

The database decides (public.receive_whatsapp_message returns `link_code` and the masked account); the
relay only says it. The Edge Function holds the same texts (tests/contract/ checks both).
"""

from __future__ import annotations

FIXED_REPLIES = {
    "code_expired": "That link code has expired. Make a new one in the app and send it again.",
    "code_unknown": "That link code is not valid. Check it in the app, or make a new one.",
    "linked_elsewhere": "This WhatsApp is already linked to another account, so nothing was changed.",
    "account_has_whatsapp": "That app account is already linked to another WhatsApp, so nothing was changed.",
    "too_many_tries": "Too many link codes were tried from this WhatsApp. Please try again in an hour.",
    "refused": "The link could not be made, and nothing was changed. Please contact support.",
}


def link_reply(outcome: str, account: str | None) -> str:
    """The reply for a link-code outcome (the receipt's link_code)."""
    if outcome == "code_held":
        return (
            f"This links your WhatsApp to the app account {account}. Reply YES within 5 minutes to confirm."
            " If you did not ask for this, do not reply."
        )
    if outcome == "linked":
        return f"Done: your WhatsApp is linked to the app account {account}."
    return FIXED_REPLIES.get(outcome, FIXED_REPLIES["refused"])
