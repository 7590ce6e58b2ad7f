"""Signed per-ticket reply tokens for `reply+TOKEN@<mail domain>` addresses.

A token is the ticket's id in base 36 and a 16-hex-digit HMAC of it keyed by
the project's secret (and its fallbacks, so rotating the key keeps old replies
threading). Lowercase letters, digits and one hyphen only: mail servers may
change the case of local parts, and some refuse other characters.
"""

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "refdesk.tickets.reply-token"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def reply_token(ticket_id: int) -> str:
    return f"{_base36(ticket_id)}-{_signature(ticket_id, settings.SECRET_KEY)}"


def reply_address(ticket_id: int) -> str:
    return f"reply+{reply_token(ticket_id)}@{settings.REFDESK_MAIL_DOMAIN}"


def ticket_id_from_token(token: str) -> int | None:
    """The ticket id a token names, or None when it is not a valid signed token."""
    ident, _, signature = token.strip().lower().partition("-")
    if not ident or not signature or len(ident) > 13:
        return None
    try:
        ticket_id = int(ident, 36)
    except ValueError:
        return None
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if any(
        constant_time_compare(signature, _signature(ticket_id, secret))
        for secret in secrets
    ):
        return ticket_id
    return None


def _signature(ticket_id: int, secret: str) -> str:
    return salted_hmac(
        SALT, str(ticket_id), secret=secret, algorithm="sha256"
    ).hexdigest()[:16]


def _base36(number: int) -> str:
    if number <= 0:
        return "0"
    out = []
    while number:
        number, digit = divmod(number, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))
