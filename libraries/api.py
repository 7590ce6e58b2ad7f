"""Staff JSON endpoints for local info (Django session; librarians only), and the
session check the desk's other JSON endpoints share.

Every session endpoint answers 401 `unauthenticated` without a signed-in user
and 403 `forbidden` for a user who is not a librarian. Unsafe methods also
need Django's CSRF token (the `X-CSRFToken` header, as the desk page sends it):
`json_api` exempts views from the CSRF middleware because the patron API is
cross-origin, so session endpoints check it here themselves.
"""

from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

from libraries import local_info, local_info_search
from libraries.models import Librarian
from libraries.selectors import librarian_for
from refdesk.api import json_api, json_body
from refdesk.errors import Forbidden, Unauthenticated, ValidationFailed

MAX_QUERY_CHARS = 200


def _csrf_refused(request: HttpRequest) -> bool:
    check = CsrfViewMiddleware(lambda r: None)
    return check.process_view(request, None, (), {}) is not None


def session_librarian(request: HttpRequest) -> Librarian:
    """The signed-in librarian; CSRF-checked for unsafe methods.

    Unauthenticated (401) without a session, Forbidden (403) for anyone else.
    """
    user = request.user
    if not user.is_authenticated:
        raise Unauthenticated("sign in at /accounts/login/")
    librarian = librarian_for(user)
    if librarian is None or not user.is_active:
        raise Forbidden("this is for librarians")
    if request.method not in ("GET", "HEAD", "OPTIONS") and _csrf_refused(request):
        raise Forbidden("CSRF token missing or incorrect; send X-CSRFToken")
    return librarian


def query_text(request: HttpRequest, name: str = "q", *, required: bool = False) -> str:
    value = " ".join(request.GET.get(name, "").split())
    if len(value) > MAX_QUERY_CHARS:
        raise ValidationFailed(
            f"{name}: at most {MAX_QUERY_CHARS} characters",
            errors={name: [f"at most {MAX_QUERY_CHARS} characters"]},
        )
    if required and not value:
        raise ValidationFailed(
            f"{name}: this parameter is required",
            errors={name: ["this parameter is required"]},
        )
    return value


def limit_param(request: HttpRequest, *, default: int, maximum: int) -> int:
    raw = request.GET.get("limit", "")
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ValidationFailed(
            f"limit: a whole number from 1 to {maximum}",
            errors={"limit": [f"a whole number from 1 to {maximum}"]},
        )
    return int(raw)


def _note(data: dict) -> str:
    note = data.get("note", "")
    if note is None:
        return ""
    if not isinstance(note, str):
        raise ValidationFailed(
            "note: must be a string", errors={"note": ["must be a string"]}
        )
    return note


@json_api(methods=("POST",))
def report_outdated(request: HttpRequest, section_id: int):
    librarian = session_librarian(request)
    report = local_info.report_outdated_local_info(
        section_id=section_id, librarian=librarian, note=_note(json_body(request))
    )
    return 201, {
        "id": report.pk,
        "section": report.section_id,
        "library": {"slug": report.library.slug, "name": report.library.name},
        "created_at": report.created_at.isoformat(),
    }


@json_api(methods=("GET",))
def search_local_info(request: HttpRequest):
    session_librarian(request)
    q = query_text(request, required=True)
    limit = limit_param(request, default=20, maximum=local_info_search.MAX_LIMIT)
    hits = local_info_search.search_local_info(q=q, limit=limit)
    return {"query": q, "results": [hit.as_dict() for hit in hits]}
