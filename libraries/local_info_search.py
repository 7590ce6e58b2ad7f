"""Staff search across every library's local info cards.

"Which libraries give cards to non-residents?" ranks each section by a
weighted text-search vector (title A, body B) computed on the fly: cards are
a few dozen short sections per library, so no stored vector is needed. The
matching passage comes back as `snippet_html`: escaped text in which only the
`<mark>` highlights are markup. SQLite falls back to `icontains` on words.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.postgres.search import SearchHeadline, SearchRank, SearchVector
from django.db.models import F, FloatField, Q, QuerySet
from django.db.models.functions import Cast

from libraries import textsearch
from libraries.models import LocalInfoSection

MAX_LIMIT = 50
_FALLBACK_CANDIDATES = 500


@dataclass(frozen=True)
class SectionHit:
    section_id: int
    library_slug: str
    library_name: str
    title: str
    kind: str
    snippet_html: str
    score: float

    def as_dict(self) -> dict:
        return {
            "id": self.section_id,
            "library": {"slug": self.library_slug, "name": self.library_name},
            "title": self.title,
            "kind": self.kind,
            "snippet_html": self.snippet_html,
            "score": round(self.score, 4),
        }


def _sections(library_ids: Sequence[int] | None) -> QuerySet[LocalInfoSection]:
    sections = LocalInfoSection.objects.select_related("library")
    if library_ids is not None:
        sections = sections.filter(library_id__in=library_ids)
    return sections


def search_local_info(
    *, q: str, library_ids: Sequence[int] | None = None, limit: int = 20
) -> list[SectionHit]:
    """Sections matching any word of `q`, best first (every library, or some)."""
    limit = max(1, min(limit, MAX_LIMIT))
    if not textsearch.words(q):
        return []
    if textsearch.is_postgresql():
        return _postgres_search(_sections(library_ids), q=q, limit=limit)
    return _fallback_search(_sections(library_ids), q=q, limit=limit)


def _postgres_search(
    sections: QuerySet[LocalInfoSection], *, q: str, limit: int
) -> list[SectionHit]:
    query = textsearch.any_word_query(q)
    vector = SearchVector("title", weight="A", config=textsearch.CONFIG) + SearchVector(
        "body", weight="B", config=textsearch.CONFIG
    )
    rows = (
        sections.annotate(document=vector)
        .filter(document=query)
        .annotate(
            rank=Cast(SearchRank(F("document"), query), FloatField()),
            headline=SearchHeadline(
                "body",
                query,
                config=textsearch.CONFIG,
                start_sel=textsearch.MARK_START,
                stop_sel=textsearch.MARK_STOP,
                max_words=28,
                min_words=12,
                max_fragments=2,
                fragment_delimiter=" … ",
            ),
        )
        .order_by("-rank", "library__name", "position", "id")[:limit]
    )
    return [
        SectionHit(
            section_id=row.pk,
            library_slug=row.library.slug,
            library_name=row.library.name,
            title=row.title,
            kind=row.kind,
            snippet_html=textsearch.highlighted_html(row.headline),
            score=row.rank,
        )
        for row in rows
    ]


def _fallback_search(
    sections: QuerySet[LocalInfoSection], *, q: str, limit: int
) -> list[SectionHit]:
    terms = [textsearch.crude_stem(w) for w in textsearch.meaningful_words(q)]
    if not terms:
        return []
    condition = Q()
    for term in terms:
        condition |= Q(title__icontains=term) | Q(body__icontains=term)
    hits = []
    for row in sections.filter(condition)[:_FALLBACK_CANDIDATES]:
        title, body = row.title.lower(), row.body.lower()
        score = sum(2.0 * (t in title) + 1.0 * (t in body) for t in terms)
        hits.append(
            SectionHit(
                section_id=row.pk,
                library_slug=row.library.slug,
                library_name=row.library.name,
                title=row.title,
                kind=row.kind,
                snippet_html=textsearch.excerpt_html(row.body, terms),
                score=score,
            )
        )
    hits.sort(key=lambda h: (-h.score, h.library_name, h.section_id))
    return hits[:limit]
