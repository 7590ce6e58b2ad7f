"""Remove a patron's details from text before it becomes an FAQ draft. Pure.

Drafts are read by other staff and may be published, so anything that could
identify the patron goes: their name (whole and each part), their email, any
email address, anything that looks like a phone number, and long digit runs
such as library card numbers. A librarian reviews the draft before an admin
publishes it; this is the safety net, not the review.
"""

import re
from collections.abc import Iterable

NAME = "[name]"
EMAIL = "[email]"
PHONE = "[phone]"
NUMBER = "[number]"

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# Runs of digits, perhaps split by spaces, dots or dashes, perhaps with a
# +country code or an (area code): phone, card and account numbers, dates.
_DIGIT_RUN = re.compile(
    r"(?<![\w+(])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d+(?:[\s.-]\d+)*(?!\w)"
)
_MIN_NAME_PART = 3


def _classify_digits(match: re.Match) -> str:
    """Card numbers: 12+ digits, or 8+ written together. Phones: 7 to 11 digits."""
    text = match.group()
    digits = sum(c.isdigit() for c in text)
    if digits >= 12 or (digits >= 8 and text.isdigit()):
        return NUMBER
    if digits >= 7:
        return PHONE
    return text


def scrub(text: str, *, names: Iterable[str] = (), emails: Iterable[str] = ()) -> str:
    """The text with the patron's details replaced by placeholders like "[name]"."""
    for email in sorted(
        {e.strip() for e in emails if e and e.strip()}, key=len, reverse=True
    ):
        text = re.sub(re.escape(email), EMAIL, text, flags=re.IGNORECASE)
    text = _EMAIL.sub(EMAIL, text)
    text = _DIGIT_RUN.sub(_classify_digits, text)
    for name in _name_forms(names):
        text = re.sub(
            rf"(?<!\w){re.escape(name)}(?!\w)", NAME, text, flags=re.IGNORECASE
        )
    return text


def _name_forms(names: Iterable[str]) -> list[str]:
    """The full names and their parts long enough to be safely matched, longest first."""
    forms: set[str] = set()
    for name in names:
        clean = " ".join((name or "").split())
        if not clean:
            continue
        forms.add(clean)
        forms.update(part for part in clean.split() if len(part) >= _MIN_NAME_PART)
    return sorted(forms, key=len, reverse=True)
