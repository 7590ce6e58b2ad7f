"""Tickets' domain errors; each carries the PROTOCOL.md error code and HTTP status."""

from refdesk.errors import (
    AlreadyTaken,
    Forbidden,
    NotFound,
    NotYours,
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
