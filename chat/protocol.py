"""PROTOCOL.md in code: client frames parsed into typed commands, server frames built.

Nothing here touches the database: builders take rows that selectors already
fetched, parsers take decoded JSON.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from chat.exceptions import (
    BadFrame,
    BadJson,
    FrameTooLarge,
    UnknownType,
    ValidationFailed,
)

MAX_FRAME_BYTES = 16 * 1024
MAX_SOCKET_FRAME_BYTES = 1024 * 1024
MAX_BODY_CHARS = 4000
MAX_CLIENT_ID_CHARS = 100
MAX_NOTE_CHARS = 1000
MAX_TAGS = 20
MAX_TAG_CHARS = 50
OUTCOMES = (
    "answered",
    "follow_up_self",
    "follow_up_home",
    "lost_connection",
    "spam",
    "practice",
)


# Client → server commands
# ----------------------------------------------------------------------
@dataclass(frozen=True)
class SendMessage:
    body: str
    client_id: str = ""
    conversation: UUID | None = None


@dataclass(frozen=True)
class Typing:
    conversation: UUID | None = None


@dataclass(frozen=True)
class Resume:
    after_seq: int
    conversation: UUID | None = None


@dataclass(frozen=True)
class Close:
    conversation: UUID | None = None
    outcome: str = "answered"
    note: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SetPresence:
    status: Literal["available", "away"]


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class Accept:
    conversation: UUID


@dataclass(frozen=True)
class Transfer:
    conversation: UUID
    to_library: str
    note: str = ""


def decode_frame(text: str | None, data: bytes | None) -> dict[str, Any]:
    """Decode one WebSocket frame into a JSON object, or raise the protocol error."""
    raw = text.encode() if text is not None else (data or b"")
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameTooLarge(f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        content = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadJson("the frame is not valid JSON") from None
    if not isinstance(content, dict):
        raise BadFrame("a frame is a JSON object with a type")
    return content


def _text(content: dict, field: str, *, required: bool, limit: int) -> str:
    value = content.get(field)
    if value is None:
        if required:
            raise BadFrame(f"{field}: this field is required")
        return ""
    if not isinstance(value, str):
        raise BadFrame(f"{field}: must be a string")
    value = value.strip()
    if len(value) > limit:
        raise ValidationFailed(f"{field}: at most {limit} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold it
        raise ValidationFailed(f"{field}: must not contain NUL characters")
    return value


def _body(content: dict) -> str:
    body = _text(content, "body", required=True, limit=MAX_BODY_CHARS)
    if not body:
        raise ValidationFailed("body: must not be empty")
    return body


def _client_id(content: dict) -> str:
    value = content.get("client_id")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadFrame("client_id: must be a string")
    if not 1 <= len(value) <= MAX_CLIENT_ID_CHARS:
        raise ValidationFailed(f"client_id: 1 to {MAX_CLIENT_ID_CHARS} characters")
    return value


def _conversation(content: dict) -> UUID:
    value = content.get("conversation")
    if not isinstance(value, str):
        raise BadFrame("conversation: a conversation id is required")
    try:
        return UUID(value)
    except ValueError:
        raise BadFrame("conversation: not a conversation id") from None


def _after_seq(content: dict) -> int:
    value = content.get("after_seq", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadFrame("after_seq: a whole number, 0 or more")
    return value


def _type(content: dict) -> str:
    kind = content.get("type")
    if not isinstance(kind, str):
        raise BadFrame("type: this field is required")
    return kind


def parse_patron_frame(
    content: dict[str, Any],
) -> SendMessage | Typing | Resume | Close:
    match _type(content):
        case "message":
            return SendMessage(body=_body(content), client_id=_client_id(content))
        case "typing":
            return Typing()
        case "resume":
            return Resume(after_seq=_after_seq(content))
        case "close":
            return Close()
        case other:
            raise UnknownType(f"unknown frame type {other[:40]!r}")


def parse_desk_frame(content: dict[str, Any]):
    match _type(content):
        case "heartbeat":
            return Heartbeat()
        case "presence":
            status = content.get("status")
            if status not in ("available", "away"):
                raise BadFrame("status: available or away")
            return SetPresence(status=status)
        case "accept":
            return Accept(conversation=_conversation(content))
        case "message":
            conversation = _conversation(content)
            return SendMessage(
                body=_body(content),
                client_id=_client_id(content),
                conversation=conversation,
            )
        case "typing":
            return Typing(conversation=_conversation(content))
        case "resume":
            return Resume(
                conversation=_conversation(content), after_seq=_after_seq(content)
            )
        case "transfer":
            conversation = _conversation(content)
            to_library = _text(content, "to_library", required=True, limit=50)
            if not to_library:
                raise BadFrame("to_library: a library slug is required")
            note = _text(content, "note", required=False, limit=MAX_NOTE_CHARS)
            return Transfer(conversation=conversation, to_library=to_library, note=note)
        case "close":
            conversation = _conversation(content)
            outcome = content.get("outcome", "answered")
            if outcome not in OUTCOMES:
                raise ValidationFailed(f"outcome: one of {', '.join(OUTCOMES)}")
            note = _text(content, "note", required=False, limit=2000)
            return Close(
                conversation=conversation,
                outcome=outcome,
                note=note,
                tags=_tags(content),
            )
        case other:
            raise UnknownType(f"unknown frame type {other[:40]!r}")


def _tags(content: dict) -> tuple[str, ...]:
    tags = content.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BadFrame("tags: a list of strings")
    cleaned = tuple(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))
    if len(cleaned) > MAX_TAGS or any(len(t) > MAX_TAG_CHARS for t in cleaned):
        raise ValidationFailed(
            f"tags: at most {MAX_TAGS} tags of {MAX_TAG_CHARS} characters"
        )
    return cleaned


# Server → client frames
# ----------------------------------------------------------------------
def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def library_ref(library) -> dict:
    return {"slug": library.slug, "name": library.name}


def message(row) -> dict:
    """A stored message in the patron shape."""
    return {
        "type": "message",
        "seq": row.seq,
        "sender": row.sender,
        "name": row.name,
        "body": row.body,
        "sent_at": iso(row.sent_at),
        "client_id": row.client_id,
    }


def desk_message(patron_shape: dict, conversation_id: UUID | str) -> dict:
    return {**patron_shape, "conversation": str(conversation_id)}


def status(
    *, status: str, queue: str | None, library, estimated_wait_seconds: int | None
) -> dict:
    return {
        "type": "status",
        "status": status,
        "queue": queue,
        "library": library_ref(library),
        "estimated_wait_seconds": estimated_wait_seconds,
    }


def patron_queue(step: str) -> str | None:
    """The PROTOCOL queue name of a step: partners are part of the overflow."""
    return {"local": "local", "partner": "overflow", "overflow": "overflow"}.get(step)


def queue_item(conversation, *, question: str, slugs: dict[int, str]) -> dict:
    return {
        "id": str(conversation.id),
        "origin_library": slugs.get(conversation.origin_library_id),
        "home_library": (
            slugs.get(conversation.home_library_id)
            if conversation.home_library_id
            else conversation.declared_home_library or None
        ),
        "in_area": conversation.is_in_area,
        "queue": patron_queue(conversation.queue),
        "step": conversation.queue,
        "question": question,
        "waiting_since": iso(conversation.waiting_since or conversation.created_at),
        "escalate_at": iso(conversation.escalate_at),
        "transfer_note": conversation.transfer_note or None,
    }


def error(code: str, detail: str, **context: Any) -> dict:
    frame = {"type": "error", "code": code, "detail": detail}
    frame.update({k: v for k, v in context.items() if v is not None})
    return frame
