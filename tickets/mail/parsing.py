"""Raw RFC 822 bytes in, a `ParsedEmail` out: pure, the standard library only.

- Bodies: text/plain is preferred; an HTML-only message is turned into text
  (blockquotes and the common clients' quote containers become `>` lines).
  Unknown or wrong charsets never fail: bytes that do not decode are replaced.
- Headers: RFC 2047 encoded words and RFC 2231 file names are decoded by
  `email.policy.default`.
- `visible` is the new text of a reply: quoted history (Gmail/Apple
  Mail/Thunderbird "On … wrote:", Outlook "-----Original Message-----" and
  "From: … Sent: …" blocks, `>` lines), the "-- " signature and mobile
  signatures are cut. The full text stays in `text`.
- `auto_kind` says why nobody should answer the message: "auto_reply"
  (Auto-Submitted other than "no", X-Autoreply, X-Autorespond, out-of-office
  subjects, no-reply senders), "bulk" (Precedence bulk/junk/list, mailing-list
  headers) or "bounce" (multipart/report, MAILER-DAEMON or postmaster senders,
  an empty Return-Path, X-Failed-Recipients); "" for a person's message.
- Threading facts: reply tokens in `reply+TOKEN@<mail domain>` recipients (To,
  Cc, Delivered-To, X-Original-To, Envelope-To, Resent-To), the Message-IDs of
  In-Reply-To and References, the Message-IDs of a bounced original, and ticket
  references (`RD-YY-NNNNNN`) in the subject.
- `EmailParseError` is raised for bytes that are not an email at all (no
  headers) or that name no sender; the caller keeps the raw bytes.
"""

import email
import email.policy
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from tickets.mail.text import html_to_text, normalise_newlines, visible_text

RECIPIENT_HEADERS = (
    "To",
    "Cc",
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "Resent-To",
)
REFERENCE_RE = re.compile(r"\bRD-(\d{2})-(\d{6,})\b", re.IGNORECASE)
_MESSAGE_ID_RE = re.compile(r"<[^<>\s]+>")
_MAX_DEPTH = 30

_OUT_OF_OFFICE_RE = re.compile(
    r"^\s*(auto(matic|matische)?[\s_-]*(reply|response|antwort|answer)"
    r"|autoreply|auto-reply|out of (the )?office|ooo\b|away from (my|the) (desk|office)"
    r"|on (annual )?leave|vacation (reply|response|notice)|i am (currently )?(out|away)"
    r"|abwesenheit|réponse automatique|respuesta automática|risposta automatica"
    r"|fuera de la oficina|absence)",
    re.IGNORECASE,
)
NO_REPLY_LOCALS = {
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
}
BOUNCE_LOCALS = {"mailer-daemon", "postmaster"}


class EmailParseError(ValueError):
    """The bytes cannot be read as an email; the raw message must be kept."""


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str
    content_type: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    from_name: str
    from_address: str
    recipients: tuple[str, ...]
    date: datetime | None
    text: str
    html: str
    visible: str
    attachments: tuple[ParsedAttachment, ...] = ()
    auto_kind: str = ""
    reply_tokens: tuple[str, ...] = ()
    local_parts: tuple[str, ...] = ()
    subject_references: tuple[str, ...] = ()
    original_message_ids: tuple[str, ...] = ()
    ticket_headers: tuple[str, ...] = ()

    @property
    def is_auto_reply(self) -> bool:
        """Never answer it: an auto-reply, bulk mail or a bounce."""
        return bool(self.auto_kind)

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this message answers, the most specific first."""
        seen = dict.fromkeys(
            (*self.in_reply_to, *reversed(self.references), *self.original_message_ids)
        )
        return tuple(seen)


def parse_email(raw: bytes, *, mail_domain: str = "") -> ParsedEmail:
    """Read one raw RFC 822 message; `mail_domain` is where reply tokens live."""
    if not raw or not raw.strip():
        raise EmailParseError("the message is empty")
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        return _parse(message, mail_domain=mail_domain.lower())
    except EmailParseError:
        raise
    except Exception as error:  # the stdlib raises many kinds on broken input
        raise EmailParseError(f"unreadable message: {type(error).__name__}") from error


def _parse(message: EmailMessage, *, mail_domain: str) -> ParsedEmail:
    if not message.keys():
        raise EmailParseError("no headers: this is not an email message")
    from_name, from_address = _from(message)
    if not from_address:
        raise EmailParseError("the message names no sender address")
    subject = _header(message, "Subject")
    plain_part, html_part = _body_parts(message)
    html_body = _decoded(html_part) if html_part is not None else ""
    if plain_part is not None:
        text = normalise_newlines(_decoded(plain_part))
    else:
        text = html_to_text(html_body) if html_body else ""
    recipients = _recipients(message)
    bounced_ids, ticket_headers = _bounced_original(message)
    return ParsedEmail(
        message_id=_first_id(_header(message, "Message-ID")),
        in_reply_to=_ids(_header(message, "In-Reply-To")),
        references=_ids(_header(message, "References")),
        subject=subject,
        from_name=from_name,
        from_address=from_address,
        recipients=recipients,
        date=_date(_header(message, "Date")),
        text=text.strip("\n"),
        html=html_body,
        visible=visible_text(text),
        attachments=tuple(_attachments(message, {id(plain_part), id(html_part)})),
        auto_kind=_auto_kind(message, subject=subject, from_address=from_address),
        reply_tokens=reply_tokens(recipients, mail_domain),
        local_parts=local_parts(recipients, mail_domain),
        subject_references=subject_references(subject),
        original_message_ids=bounced_ids,
        ticket_headers=(
            *subject_references(_header(message, "X-Refdesk-Ticket")),
            *ticket_headers,
        ),
    )


# Headers
# ----------------------------------------------------------------------
def _header(message: EmailMessage, name: str) -> str:
    """The decoded header, or "" when absent; malformed encodings never raise."""
    try:
        value = message.get(name)
    except Exception:
        value = None
        raw = [v for k, v in message.raw_items() if k.lower() == name.lower()]
        if raw:
            return " ".join(str(raw[0]).split())
    if value is None:
        return ""
    return " ".join(str(value).split())


def _from(message: EmailMessage) -> tuple[str, str]:
    raw = _header(message, "From") or _header(message, "Sender")
    if not raw:
        return "", ""
    name, address = parseaddr(raw)
    if "@" not in address:
        return name, ""
    return name.strip(), address.strip()


def _recipients(message: EmailMessage) -> tuple[str, ...]:
    values = []
    for name in RECIPIENT_HEADERS:
        for value in message.get_all(name, []) or []:
            values.append(str(value))
    found = []
    for _, address in getaddresses(values):
        address = address.strip().strip("<>")
        if "@" in address and address.lower() not in (a.lower() for a in found):
            found.append(address)
    return tuple(found)


def _ids(value: str) -> tuple[str, ...]:
    found = _MESSAGE_ID_RE.findall(value)
    if not found and value.strip():
        found = [f"<{value.strip().strip('<>')}>"]
    return tuple(dict.fromkeys(found))


def _first_id(value: str) -> str:
    ids = _ids(value)
    return ids[0] if ids else ""


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else None


def reply_tokens(addresses: tuple[str, ...], mail_domain: str) -> tuple[str, ...]:
    """Tokens of `reply+TOKEN@mail_domain` addresses, in order."""
    tokens = []
    for address in addresses:
        local, _, domain = address.rpartition("@")
        if mail_domain and domain.lower() != mail_domain.lower():
            continue
        if local.lower().startswith("reply+") and len(local) > len("reply+"):
            tokens.append(local[len("reply+") :])
    return tuple(dict.fromkeys(tokens))


def local_parts(addresses: tuple[str, ...], mail_domain: str) -> tuple[str, ...]:
    """Lowercased local parts of recipients at the mail domain, reply+ ones aside."""
    if not mail_domain:
        return ()
    found = []
    for address in addresses:
        local, _, domain = address.rpartition("@")
        if domain.lower() == mail_domain.lower() and not local.lower().startswith(
            "reply+"
        ):
            found.append(local.lower())
    return tuple(dict.fromkeys(found))


def subject_references(subject: str) -> tuple[str, ...]:
    """Ticket references (`RD-YY-NNNNNN`) named in a subject, normalised."""
    return tuple(
        dict.fromkeys(
            f"RD-{year}-{number}" for year, number in REFERENCE_RE.findall(subject)
        )
    )


# Auto-replies, bulk mail and bounces
# ----------------------------------------------------------------------
def _auto_kind(message: EmailMessage, *, subject: str, from_address: str) -> str:
    local = from_address.rpartition("@")[0].lower()
    if message.get_content_type() == "multipart/report" or local in BOUNCE_LOCALS:
        return "bounce"
    if message.get("X-Failed-Recipients") is not None:
        return "bounce"
    if "Return-Path" in message and _header(message, "Return-Path").strip(" <>") in (
        "",
    ):
        return "bounce"
    auto_submitted = _header(message, "Auto-Submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return "auto_reply"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autogenerated"):
        if name in message:
            return "auto_reply"
    precedence = _header(message, "Precedence").lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return "bulk"
    if "List-Id" in message or "List-Unsubscribe" in message:
        return "bulk"
    if _OUT_OF_OFFICE_RE.search(subject):
        return "auto_reply"
    if local in NO_REPLY_LOCALS:
        return "auto_reply"
    return ""


def _bounced_original(message: EmailMessage) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Message-IDs and X-Refdesk-Ticket values of the original inside a report."""
    if message.get_content_type() != "multipart/report":
        return (), ()
    ids: list[str] = []
    tickets: list[str] = []
    for part in _leaves(message):
        headers = None
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner else None
        elif part.get_content_type() == "text/rfc822-headers":
            headers = HeaderParser(policy=email.policy.default).parsestr(_decoded(part))
        if headers is not None:
            ids.extend(_ids(str(headers.get("Message-ID", ""))))
            tickets.extend(subject_references(str(headers.get("X-Refdesk-Ticket", ""))))
            tickets.extend(subject_references(str(headers.get("Subject", ""))))
    return tuple(dict.fromkeys(ids)), tuple(dict.fromkeys(tickets))


# Bodies and attachments
# ----------------------------------------------------------------------
def _body_parts(message: EmailMessage):
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    if plain is not None and plain.get_content_type() != "text/plain":
        plain = None
    if rich is not None and rich.get_content_type() != "text/html":
        rich = None
    if plain is None and rich is None and message.get_content_maintype() == "text":
        plain = message  # e.g. text/enriched or an odd text subtype
    return plain, rich


def _decoded(part) -> str:
    """The text of a part; an unknown charset or bad bytes never raise."""
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, AssertionError, KeyError, ValueError):
        pass
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8", "latin-1"):
        try:
            return payload.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", errors="replace")


def _leaves(part, depth: int = 0):
    if depth > _MAX_DEPTH:
        raise EmailParseError("the message is nested too deeply")
    if part.get_content_maintype() == "multipart":
        for sub in part.iter_parts():
            yield from _leaves(sub, depth + 1)
    else:
        yield part


def _attachments(message: EmailMessage, body_ids: set[int]):
    if message.get_content_maintype() != "multipart":
        return
    for index, part in enumerate(_leaves(message), start=1):
        if id(part) in body_ids:
            continue
        filename = _safe_filename(part.get_filename() or "")
        if (
            part.get_content_maintype() == "text"
            and not filename
            and part.get_content_disposition() != "attachment"
        ):
            continue  # another text fragment of the body, or a report's text
        content_type = part.get_content_type()
        yield ParsedAttachment(
            filename=filename or _default_name(content_type, index),
            content_type=content_type,
            data=_part_bytes(part),
        )


def _part_bytes(part) -> bytes:
    if part.get_content_maintype() == "message":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes()
        return bytes(str(inner), "utf-8", errors="replace")
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _safe_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip(" .")
    return name[:200]


def _default_name(content_type: str, index: int) -> str:
    extension = {
        "message/rfc822": "eml",
        "message/delivery-status": "txt",
        "text/rfc822-headers": "txt",
        "application/pdf": "pdf",
        "image/png": "png",
        "image/jpeg": "jpg",
        "image/gif": "gif",
    }.get(content_type, "bin")
    return f"attachment-{index}.{extension}"
