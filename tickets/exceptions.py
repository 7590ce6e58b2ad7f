"""Tickets' domain errors; each carries the PROTOCOL.md error code and HTTP status."""

from refdesk.errors import (
    Forbidden,
    NotFound,
    RefdeskError,
    StateConflict,
    ValidationFailed,
)

__all__ = [
    "AlreadyTaken",
    "Forbidden",
    "NotYours",
    "StateConflict",
    "TicketNotFound",
    "ValidationFailed",
]


class TicketNotFound(NotFound):
    pass


class AlreadyTaken(RefdeskError):
    code = "already_taken"
    status = 409


class NotYours(RefdeskError):
    code = "not_yours"
    status = 403
