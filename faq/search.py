"""Reads of FAQ answers: search, popular answers, the public pages' lookups.

On PostgreSQL an answer matches when its weighted text-search vector (question
A, tags B, answer C) matches any word of the query, or when its question is
trigram-similar to the query (so "libary card" still finds "library card").
Score: text-search rank plus a share of the trigram similarity, multiplied by
`OWN_LIBRARY_BOOST` for the asking library's own answers, so that a library's
answer beats a consortium answer of similar relevance for its patrons. On
SQLite: `icontains` on the meaningful words, scored by where they matched.
"""

import functools
import operator
from typing import Literal

from django.contrib.postgres.search import SearchRank, TrigramWordSimilarity
from django.db.models import Case, F, FloatField, Q, QuerySet, Value, When
from django.db.models.functions import Cast

from faq.models import Answer
from libraries import textsearch
from libraries.models import Library
from refdesk.errors import NotFound

type Audience = Literal["public", "staff"]

OWN_LIBRARY_BOOST = 1.3
SIMILARITY_WEIGHT = 0.3
COVERAGE_WEIGHT = 0.5
MIN_SIMILARITY = 0.35
MAX_LIMIT = 20
# Fallback scores per matched word, by where it matched.
_QUESTION, _TAGS, _ANSWER = 3.0, 2.0, 1.0
_FALLBACK_CANDIDATES = 300


def visible_answers(*, library: Library | None, audience: Audience) -> QuerySet[Answer]:
    """Published answers a library's patrons (or staff) may see: its own and the
    consortium's; with no library, the consortium's only."""
    answers = Answer.objects.filter(is_published=True)
    if audience == "public":
        answers = answers.filter(is_public=True)
    mine = Q(library__isnull=True)
    if library is not None:
        mine |= Q(library=library)
    return answers.filter(mine).select_related("library")


def search_answers(
    *, q: str, library: Library | None, audience: Audience, limit: int = 5
) -> list[Answer]:
    """The best matching answers first; each carries a `score` attribute."""
    limit = max(1, min(limit, MAX_LIMIT))
    candidates = visible_answers(library=library, audience=audience)
    if not textsearch.words(q):
        return []
    if textsearch.is_postgresql():
        return _postgres_search(candidates, q=q, library=library, limit=limit)
    return _fallback_search(candidates, q=q, library=library, limit=limit)


def _boost(library: Library | None):
    if library is None:
        return Value(1.0)
    return Case(
        When(library_id=library.pk, then=Value(OWN_LIBRARY_BOOST)),
        default=Value(1.0),
        output_field=FloatField(),
    )


def _matched_terms(text: str):
    """How many of the query's terms an answer's vector matches."""
    return functools.reduce(
        operator.add,
        (
            Case(When(search_vector=term, then=Value(1.0)), default=Value(0.0))
            for term in textsearch.term_queries(text)
        ),
    )


def _postgres_search(
    candidates: QuerySet[Answer], *, q: str, library: Library | None, limit: int
) -> list[Answer]:
    query = textsearch.any_word_query(q)
    typed = " ".join(textsearch.words(q))
    rows = (
        candidates.annotate(
            rank=Cast(SearchRank(F("search_vector"), query), FloatField()),
            similarity=TrigramWordSimilarity(typed, "question"),
        )
        .filter(Q(search_vector=query) | Q(similarity__gte=MIN_SIMILARITY))
        .annotate(matched=_matched_terms(q))
        .annotate(
            score=(
                F("rank") * (Value(1.0) + Value(COVERAGE_WEIGHT) * F("matched"))
                + F("similarity") * Value(SIMILARITY_WEIGHT)
            )
            * _boost(library)
        )
        .order_by("-score", "-self_served_count", "id")[:limit]
    )
    return list(rows)


def _fallback_search(
    candidates: QuerySet[Answer], *, q: str, library: Library | None, limit: int
) -> list[Answer]:
    terms = [textsearch.crude_stem(w) for w in textsearch.meaningful_words(q)]
    if not terms:
        return []
    condition = Q()
    for term in terms:
        condition |= Q(question__icontains=term) | Q(answer__icontains=term)
    scored = []
    for answer in candidates.filter(condition)[:_FALLBACK_CANDIDATES]:
        question, body = answer.question.lower(), answer.answer.lower()
        tags = " ".join(str(t) for t in answer.tags).lower()
        score = sum(
            _QUESTION * (t in question) + _TAGS * (t in tags) + _ANSWER * (t in body)
            for t in terms
        )
        if library is not None and answer.library_id == library.pk:
            score *= OWN_LIBRARY_BOOST
        answer.score = score
        scored.append(answer)
    scored.sort(key=lambda a: (-a.score, -a.self_served_count, a.pk))
    return scored[:limit]


def popular_answers(*, library: Library, limit: int = 5) -> list[Answer]:
    """The public answers patrons of `library` found most useful."""
    limit = max(1, min(limit, MAX_LIMIT))
    return list(
        visible_answers(library=library, audience="public").order_by(
            F("self_served_count").desc(), F("open_count").desc(), "question", "id"
        )[:limit]
    )


def public_answers(*, library: Library) -> list[Answer]:
    """Every public answer on the library's FAQ page, by question."""
    return list(
        visible_answers(library=library, audience="public").order_by("question", "id")
    )


def get_public_answer(*, answer_id: int, library: Library) -> Answer:
    """A published public answer of the library or the consortium, or NotFound."""
    answer = visible_answers(library=library, audience="public").filter(pk=answer_id)
    found = answer.first()
    if found is None:
        raise NotFound("no such answer")
    return found


def get_published_public_answer(answer_id: int) -> Answer:
    """Any published public answer, whichever library it belongs to."""
    found = (
        Answer.objects.filter(pk=answer_id, is_published=True, is_public=True)
        .select_related("library")
        .first()
    )
    if found is None:
        raise NotFound("no such answer")
    return found
