"""Helpers shared by the staff local info search and the FAQ search.

Questions are typed the way people talk ("which libraries give cards to
non-residents?"), so a match on any word counts and ranking does the rest: the
words become an OR of PostgreSQL `plainto_tsquery`s (stemmed, stop words
dropped). Elsewhere (the embedded SQLite default) callers match words with
`icontains` and rank by how many matched, using `words` and `crude_stem`.
"""

import functools
import html
import operator
import re

from django.contrib.postgres.search import SearchQuery
from django.db import connection

CONFIG = "english"
MAX_WORDS = 12
# Highlight marks for ts_headline: Unicode private-use characters, which escape
# untouched and never come from the keyboard.
MARK_START = "\ue000"
MARK_STOP = "\ue001"

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_MARKED = re.compile(f"{MARK_START}(.*?){MARK_STOP}", re.DOTALL)
_MARKDOWN_NOISE = re.compile(r"(\*\*|__|`|^\s*[-*+]\s+|^#+\s*)", re.MULTILINE)
# Words that carry no meaning for the fallback matcher (PostgreSQL has its own).
STOP_WORDS = frozenset(
    """a an and are as at be by can could do does for from get give gives had has
    have how i if in is it its me my no not of on or our out so that the their them
    there they this to up was we what when where which who why will with would you
    your""".split()  # noqa: SIM905 (a word list reads better as words)
)


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def words(text: str) -> list[str]:
    """The words of a query, lower case, in order, at most `MAX_WORDS`."""
    return _WORD.findall(text.lower())[:MAX_WORDS]


def meaningful_words(text: str) -> list[str]:
    """The query's words without stop words, for the fallback matcher."""
    return [w for w in dict.fromkeys(words(text)) if w not in STOP_WORDS and len(w) > 1]


def crude_stem(word: str) -> str:
    """ "cards" → "card", "renewals" → "renewal": enough for `icontains` matching."""
    for suffix in ("ies", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def query_terms(text: str) -> list[str]:
    """The query's distinct words, hyphenated ones also joined ("wi-fi", "wifi")."""
    terms: list[str] = []
    for word in words(text):
        terms.append(word)
        if "-" in word:
            terms.append(word.replace("-", ""))
    return list(dict.fromkeys(terms))


def joined_variants(text: str) -> str:
    """Hyphenated words written joined ("e-books" → "ebooks"), to index beside the
    text so that either spelling finds it."""
    return " ".join(w.replace("-", "") for w in _WORD.findall(text.lower()) if "-" in w)


def term_queries(text: str) -> list[SearchQuery]:
    """One PostgreSQL text-search query per query term."""
    return [SearchQuery(term, config=CONFIG) for term in query_terms(text)]


def any_word_query(text: str) -> SearchQuery | None:
    """An OR of the query's words as PostgreSQL text-search queries, or None."""
    queries = term_queries(text)
    return functools.reduce(operator.or_, queries) if queries else None


def highlighted_html(headline: str) -> str:
    """Escape a headline except for its highlight marks, which become <mark>."""
    text = _MARKDOWN_NOISE.sub("", headline)
    escaped = html.escape(" ".join(text.split()))
    marked = _MARKED.sub(r"<mark>\1</mark>", escaped)
    return marked.replace(MARK_START, "").replace(MARK_STOP, "")


def excerpt_html(text: str, terms: list[str], *, width: int = 200) -> str:
    """A window of `text` around the first matching term, escaped, terms marked.

    The fallback for `ts_headline` where there is no PostgreSQL.
    """
    plain = " ".join(_MARKDOWN_NOISE.sub("", text).split())
    lowered = plain.lower()
    hits = [lowered.find(t) for t in terms if t and lowered.find(t) >= 0]
    start = max(0, min(hits) - width // 3) if hits else 0
    window = plain[start : start + width]
    prefix = "… " if start else ""
    suffix = " …" if start + width < len(plain) else ""
    terms = sorted({t for t in terms if t}, key=len, reverse=True)
    if not terms:
        return prefix + html.escape(window) + suffix
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    parts, last = [], 0
    for match in pattern.finditer(window):
        parts.append(html.escape(window[last : match.start()]))
        parts.append(f"<mark>{html.escape(match.group())}</mark>")
        last = match.end()
    parts.append(html.escape(window[last:]))
    return prefix + "".join(parts) + suffix
