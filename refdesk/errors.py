"""Domain errors shared by every app, each carrying its PROTOCOL.md code."""


class RefdeskError(Exception):
    """A request that cannot be served; `code` and `status` follow PROTOCOL.md."""

    code = "bad_request"
    status = 400

    def __init__(self, detail: str = "", *, errors: dict[str, list[str]] | None = None):
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        self.errors = errors

    def as_dict(self) -> dict:
        body: dict = {"code": self.code, "detail": self.detail}
        if self.errors:
            body["errors"] = self.errors
        return body


class ValidationFailed(RefdeskError):
    code = "validation_error"
    status = 400


class MalformedJson(RefdeskError):
    code = "malformed_json"
    status = 400


class Unauthenticated(RefdeskError):
    code = "unauthenticated"
    status = 401


class Forbidden(RefdeskError):
    code = "forbidden"
    status = 403


class NotFound(RefdeskError):
    code = "not_found"
    status = 404


class MethodNotAllowed(RefdeskError):
    code = "method_not_allowed"
    status = 405


class UnsupportedMediaType(RefdeskError):
    code = "unsupported_media_type"
    status = 415


class StateConflict(RefdeskError):
    code = "state_conflict"
    status = 409


class AlreadyTaken(RefdeskError):
    """Someone else won the race for a chat or a ticket."""

    code = "already_taken"
    status = 409


class NotYours(RefdeskError):
    """The chat or ticket belongs to another librarian or library."""

    code = "not_yours"
    status = 403


class TooLarge(RefdeskError):
    code = "too_large"
    status = 413


class RateLimited(RefdeskError):
    code = "rate_limited"
    status = 429

    def __init__(self, detail: str = "", *, retry_after: int = 60):
        super().__init__(detail or "too many requests; try again shortly")
        self.retry_after = retry_after
