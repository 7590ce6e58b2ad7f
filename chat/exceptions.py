"""Chat's domain errors; each carries the PROTOCOL.md error code."""

from refdesk.errors import (
    AlreadyTaken,
    NotFound,
    NotYours,
    RefdeskError,
    StateConflict,
    ValidationFailed,
)

__all__ = [
    "AlreadyTaken",
    "BadFrame",
    "BadJson",
    "ConversationClosed",
    "ConversationNotFound",
    "FrameTooLarge",
    "NotYours",
    "StateConflict",
    "UnknownType",
    "ValidationFailed",
]


class ConversationNotFound(NotFound):
    pass


class ConversationClosed(RefdeskError):
    code = "conversation_closed"
    status = 409


class BadJson(RefdeskError):
    code = "bad_json"


class BadFrame(RefdeskError):
    code = "bad_frame"


class UnknownType(RefdeskError):
    code = "unknown_type"


class FrameTooLarge(RefdeskError):
    code = "too_large"
    status = 413
