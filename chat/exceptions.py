"""Chat's domain errors; each carries the PROTOCOL.md error code."""

from refdesk.errors import NotFound, RefdeskError, StateConflict, ValidationFailed

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


class AlreadyTaken(RefdeskError):
    code = "already_taken"
    status = 409


class NotYours(RefdeskError):
    code = "not_yours"
    status = 403


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
