"""Email in and out: pure parsing (`parsing`, `text`) and message builders (`outgoing`)."""

from tickets.mail.parsing import (
    EmailParseError,
    ParsedAttachment,
    ParsedEmail,
    parse_email,
)
from tickets.mail.text import html_to_text, visible_text

__all__ = [
    "EmailParseError",
    "ParsedAttachment",
    "ParsedEmail",
    "html_to_text",
    "parse_email",
    "visible_text",
]
