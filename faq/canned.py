"""Canned responses: filling `{placeholders}`, and today's hours as words. Pure.

Bodies are staff-written text, never format strings: placeholders are replaced
by a regular expression, so `{0}`, `{patron_name.__class__}` or a stray brace
stay exactly as written, and unknown placeholders are left for the librarian to
see and fix.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

PLACEHOLDERS = (
    "patron_name",
    "library_name",
    "library_hours_today",
    "library_website",
    "librarian_name",
)
PATRON_FALLBACK = "there"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Span:
    opens: datetime  # aware, in the library's zone
    closes: datetime


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace every `{name}` whose name is in `values`; leave the rest as written."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        return values[name] if name in values else match.group(0)

    return _PLACEHOLDER.sub(replace, text)


def _clock(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes} {'am' if moment.hour < 12 else 'pm'}"


def describe_hours(spans: Sequence[Span], *, always_open: bool = False) -> str:
    """Today's hours in words: "9 am–8 pm", "9 am–12 pm and 1 pm–6 pm", "closed today"."""
    if always_open:
        return "open 24 hours"
    if not spans:
        return "closed today"
    if len(spans) == 1 and spans[0].closes - spans[0].opens >= timedelta(hours=24):
        return "open 24 hours"
    parts = [f"{_clock(s.opens)}–{_clock(s.closes)}" for s in spans]
    return " and ".join(parts)


def placeholder_values(
    *,
    patron_name: str,
    library_name: str,
    library_website: str,
    librarian_name: str,
    hours_today: str,
) -> dict[str, str]:
    """The values of every placeholder; the patron is "there" when unnamed."""
    return {
        "patron_name": " ".join(patron_name.split()) or PATRON_FALLBACK,
        "library_name": library_name,
        "library_hours_today": hours_today,
        "library_website": library_website,
        "librarian_name": librarian_name,
    }
