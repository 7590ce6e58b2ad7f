"""Email in and out: pure parsing (`parsing`) and message builders (`outgoing`)."""

from tickets.mail.parsing import (
    EmailParseError,
    ParsedAttachment,
    ParsedEmail,
    html_to_text,
    parse_email,
    visible_text,
)

__all__ = [
    "EmailParseError",
    "ParsedAttachment",
    "ParsedEmail",
    "html_to_text",
    "parse_email",
    "visible_text",
]
