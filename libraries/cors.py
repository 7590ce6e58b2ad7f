"""CORS origin lists for the JSON API (`refdesk.api.json_api(origins=…)`)."""

from django.http import HttpRequest

from libraries.selectors import all_widget_origins, widget_origins


def library_origins(request: HttpRequest, slug: str, **kwargs) -> set[str]:
    """A library's endpoints answer its own website and registered widget origins."""
    return widget_origins(slug=slug)


def member_origins(request: HttpRequest, **kwargs) -> set[str]:
    """Endpoints that belong to no one library answer every member's origins."""
    return all_widget_origins()
