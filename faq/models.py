"""Knowledge-base answers (public or staff-only) and canned responses."""

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q


class Answer(models.Model):
    """One FAQ entry: consortium-wide (no library) or one library's own.

    `search_vector` (question A, tags B, answer C; PostgreSQL only) is written by
    `faq.services.save_answer`, never by hand; it stays empty on SQLite, where
    search falls back to matching words.
    """

    question = models.CharField(max_length=300)
    answer = models.TextField(
        help_text="Markdown. Raw HTML is shown as text; links may be http(s), mailto or tel."
    )
    library = models.ForeignKey(
        "libraries.Library",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="faq_answers",
        help_text="Empty: a consortium-wide answer, offered on every member's pages.",
    )
    is_public = models.BooleanField(
        default=True,
        help_text="Shown to patrons; otherwise staff-only (desk suggestions).",
    )
    tags = models.JSONField(default=list, blank=True)
    is_published = models.BooleanField(default=False)
    drafted_from = models.CharField(
        max_length=60,
        blank=True,
        editable=False,
        help_text="The chat or ticket a librarian drafted this from, if any.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="faq_answers_created",
    )
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="faq_answers_published",
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    open_count = models.PositiveIntegerField(default=0, editable=False)
    self_served_count = models.PositiveIntegerField(default=0, editable=False)
    search_vector = SearchVectorField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["question", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(is_published=True) | Q(published_at__isnull=False),
                name="faq_published_answer_has_time",
            ),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="faq_answer_search"),
            models.Index(
                fields=["library"],
                condition=Q(is_published=True),
                name="faq_published_by_library",
            ),
        ]

    def __str__(self) -> str:
        return self.question

    @property
    def is_consortium_wide(self) -> bool:
        return self.library_id is None


class CannedScope(models.TextChoices):
    CONSORTIUM = "consortium"
    LIBRARY = "library"
    PERSONAL = "personal"


class CannedResponse(models.Model):
    """A reply a librarian inserts by shortcut, with `{placeholders}` filled in.

    Consortium responses have no library and no owner; library responses a
    library; personal ones an owner (and the owner's library, for admin scoping).
    """

    scope = models.CharField(max_length=16, choices=CannedScope)
    library = models.ForeignKey(
        "libraries.Library",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="canned_responses",
    )
    owner = models.ForeignKey(
        "libraries.Librarian",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="canned_responses",
    )
    shortcut = models.SlugField(
        max_length=40, help_text='Typed after "/" in the desk composer, e.g. "hours".'
    )
    title = models.CharField(max_length=120)
    body = models.TextField(
        help_text="Plain text. Placeholders: {patron_name}, {library_name}, "
        "{library_hours_today}, {library_website}, {librarian_name}."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["shortcut", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope__in=CannedScope.values), name="canned_scope_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(
                        scope=CannedScope.CONSORTIUM,
                        library__isnull=True,
                        owner__isnull=True,
                    )
                    | Q(
                        scope=CannedScope.LIBRARY,
                        library__isnull=False,
                        owner__isnull=True,
                    )
                    | Q(scope=CannedScope.PERSONAL, owner__isnull=False)
                ),
                name="canned_scope_matches_owner",
            ),
            models.UniqueConstraint(
                fields=["shortcut"],
                condition=Q(scope=CannedScope.CONSORTIUM),
                name="canned_consortium_shortcut_unique",
            ),
            models.UniqueConstraint(
                fields=["library", "shortcut"],
                condition=Q(scope=CannedScope.LIBRARY),
                name="canned_library_shortcut_unique",
            ),
            models.UniqueConstraint(
                fields=["owner", "shortcut"],
                condition=Q(scope=CannedScope.PERSONAL),
                name="canned_personal_shortcut_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut} {self.title}"
