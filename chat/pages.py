"""Pages: the home page, the patron ask page and widget, the demo site and the desk.

Page views read through selectors and render; every live interaction then
happens in the browser against the JSON API and the WebSockets (PROTOCOL.md).
"""

import hashlib
import re

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import render
from django.urls import reverse
from django.utils.text import capfirst
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

from chat.models import Outcome
from libraries import selectors as library_selectors
from libraries.models import Library, validate_origin
from refdesk.errors import NotFound

# The outcomes a librarian chooses from when closing a chat (PROTOCOL.md order).
CLOSE_OUTCOMES = [
    Outcome.ANSWERED,
    Outcome.FOLLOW_UP_SELF,
    Outcome.FOLLOW_UP_HOME,
    Outcome.LOST_CONNECTION,
    Outcome.SPAM,
    Outcome.PRACTICE,
]
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_DEFAULT_BRAND = "#1f4e79"
# The loader is not content-hashed, so caches revalidate it often.
_WIDGET_MAX_AGE = 300


def consortium(request: HttpRequest) -> dict:
    """Context processor: the consortium's public name on every page."""
    return {"consortium_name": settings.REFDESK_CONSORTIUM_NAME}


def _library_or_404(slug: str) -> Library:
    try:
        return library_selectors.get_library(slug=slug)
    except NotFound:
        raise Http404(f"no member library {slug!r}") from None


def _relative_luminance(color: str) -> float:
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def brand_colors(color: str) -> tuple[str, str]:
    """The library's colour as given, and a text colour on it meeting WCAG AA.

    White is used whenever it reaches 4.5:1; a library that chose a light colour
    gets near-black text instead of an unreadable header.
    """
    if not _COLOR.match(color or ""):
        color = _DEFAULT_BRAND
    luminance = _relative_luminance(color)
    white_contrast = 1.05 / (luminance + 0.05)
    return color, "#ffffff" if white_contrast >= 4.5 else "#111111"


def frame_origins(library: Library) -> list[str]:
    """Origins allowed to frame the library's widget: its website and widget origins.

    The same list that CORS uses (`widget_origins`); anything that is not a
    plain origin is left out rather than written into a header.
    """
    origins = []
    for origin in sorted(library_selectors.widget_origins(slug=library.slug)):
        try:
            validate_origin(origin)
        except ValidationError:
            continue
        origins.append(origin)
    return origins


def _patron_context(request: HttpRequest, library: Library, *, embedded: bool) -> dict:
    brand, brand_text = brand_colors(library.brand_color)
    return {
        **consortium(request),
        "library": library,
        "embedded": embedded,
        "brand_color": brand,
        "brand_text_color": brand_text,
        "patron_config": {
            "slug": library.slug,
            "name": library.name,
            "timezone": library.timezone,
            "consortiumName": settings.REFDESK_CONSORTIUM_NAME,
            "embedded": embedded,
            "statusUrl": reverse("chat:api-library-status", args=[library.slug]),
            "startUrl": reverse("chat:api-start-conversation", args=[library.slug]),
            "followUpUrl": "/api/v1/conversations/{id}/follow-up",
        },
    }


@require_safe
def home_page(request: HttpRequest) -> HttpResponse:
    libraries = Library.objects.order_by("name").only("slug", "name", "website")
    return render(
        request,
        "chat/home.html",
        {
            **consortium(request),
            "libraries": libraries,
            "widget_url": request.build_absolute_uri(reverse("chat:widget-script")),
        },
    )


@require_safe
def ask_page(request: HttpRequest, slug: str) -> HttpResponse:
    library = _library_or_404(slug)
    return render(
        request, "chat/ask.html", _patron_context(request, library, embedded=False)
    )


@require_safe
@xframe_options_exempt
def widget_panel(request: HttpRequest, slug: str) -> HttpResponse:
    """The patron UI in the loader's iframe, framable only by the library's origins."""
    library = _library_or_404(slug)
    response = render(
        request, "chat/ask.html", _patron_context(request, library, embedded=True)
    )
    ancestors = " ".join(frame_origins(library)) or "'none'"
    response["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
    return response


def _widget_source() -> tuple[bytes, str]:
    path = finders.find("chat/widget.js")
    if not path:
        raise Http404("widget loader missing")
    with open(path, "rb") as handle:
        body = handle.read()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@require_safe
def widget_script(request: HttpRequest) -> HttpResponse:
    """The embeddable loader at a stable URL (the one-line snippet points here)."""
    body, etag = _widget_source()
    if etag in request.headers.get("If-None-Match", ""):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={_WIDGET_MAX_AGE}"
    # Member sites load it cross-origin with a plain <script> tag.
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_safe
def demo_site(request: HttpRequest, slug: str) -> HttpResponse:
    """A stand-in "member library website" embedding the widget with the snippet.

    A real member site lives on its own origin; this page is served by refdesk
    itself, so refdesk's own origin must be registered as one of the library's
    widget origins (or be its website) for the panel to be allowed to frame.
    """
    library = _library_or_404(slug)
    own_origin = f"{request.scheme}://{request.get_host()}".lower()
    brand, brand_text = brand_colors(library.brand_color)
    return render(
        request,
        "chat/demo_site.html",
        {
            **consortium(request),
            "library": library,
            "brand_color": brand,
            "brand_text_color": brand_text,
            "widget_url": request.build_absolute_uri(reverse("chat:widget-script")),
            "own_origin": own_origin,
            "frame_allowed": own_origin in frame_origins(library),
        },
    )


@login_required
@require_safe
def desk_page(request: HttpRequest) -> HttpResponse:
    librarian = library_selectors.librarian_for(request.user)
    if librarian is None or librarian.library_id is None:
        return render(
            request,
            "chat/desk.html",
            {**consortium(request), "forbidden": True},
            status=403,
        )
    libraries = Library.objects.order_by("name").only("slug", "name")
    return render(
        request,
        "chat/desk.html",
        {
            **consortium(request),
            "librarian": librarian,
            "desk_config": {
                "librarian": librarian.display_name,
                "library": {
                    "slug": librarian.library.slug,
                    "name": librarian.library.name,
                },
                "libraries": [
                    {"slug": lib.slug, "name": lib.name} for lib in libraries
                ],
                "outcomes": [
                    {"value": o.value, "label": capfirst(str(o.label))}
                    for o in CLOSE_OUTCOMES
                ],
                "socket": "/ws/desk/",
            },
        },
    )
