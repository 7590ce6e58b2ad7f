"""Member libraries, their calendars, service areas, local info and librarians."""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            "%(value)s is not a known time zone; use an IANA name such as "
            "America/Chicago or Europe/London.",
            params={"value": value},
            code="invalid_timezone",
        )


validate_origin = RegexValidator(
    regex=r"^https?://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)(:[0-9]{1,5})?$",
    message=(
        "Enter a web origin: scheme, host and optional port, with no path, "
        "e.g. https://www.springfieldlibrary.org or http://localhost:8080."
    ),
    code="invalid_origin",
)

validate_color = RegexValidator(
    regex=r"^#[0-9a-fA-F]{6}$",
    message="Enter a colour as #rrggbb, e.g. #1f4e79.",
    code="invalid_color",
)


class Weekday(models.IntegerChoices):
    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


class Library(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(
        max_length=64, validators=[validate_timezone], default="America/Chicago"
    )
    website = models.URLField(
        help_text="The library's home page; its origin may embed the widget."
    )
    contact_email = models.EmailField(
        help_text="Receives reports about outdated local info and library notices."
    )
    brand_color = models.CharField(
        max_length=7,
        default="#1f4e79",
        validators=[validate_color],
        help_text="Header colour of the chat widget; text on it is white, so keep it dark.",
    )
    partners = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="partner_of",
        help_text="Libraries offered this library's chats first when it cannot answer.",
    )
    sends_overflow = models.BooleanField(
        default=True, help_text="Chats this library cannot answer go to other members."
    )
    takes_overflow = models.BooleanField(
        default=True, help_text="This library answers other members' chats."
    )
    local_wait_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="How long a chat waits for this library before moving on; "
        "empty means the consortium default.",
    )
    partner_wait_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="How long a chat waits for the partner libraries; "
        "empty means the consortium's local wait.",
    )
    chats_per_librarian = models.PositiveSmallIntegerField(
        default=3, help_text="How many chats one librarian handles at once."
    )
    always_open = models.BooleanField(
        default=False, help_text="Open around the clock; weekly hours are ignored."
    )
    local_info_verified_at = models.DateTimeField(null=True, blank=True)
    local_info_verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="verified_libraries",
    )
    local_info_stale_notified_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the library was last told its local info card is stale.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "libraries"
        constraints = [
            models.CheckConstraint(
                condition=Q(chats_per_librarian__gte=1),
                name="library_capacity_positive",
            ),
            models.CheckConstraint(
                condition=Q(local_wait_seconds__isnull=True)
                | Q(local_wait_seconds__gte=1),
                name="library_local_wait_positive",
            ),
            models.CheckConstraint(
                condition=Q(partner_wait_seconds__isnull=True)
                | Q(partner_wait_seconds__gte=1),
                name="library_partner_wait_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class WidgetOrigin(models.Model):
    """A web origin, besides the library's website, allowed to embed its widget."""

    library = models.ForeignKey(
        Library, on_delete=models.CASCADE, related_name="widget_origins"
    )
    origin = models.CharField(max_length=255, validators=[validate_origin])

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["library", "origin"], name="widget_origin_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.origin


class WeeklyHours(models.Model):
    """One open span on a weekday; closing at or before opening runs overnight."""

    library = models.ForeignKey(
        Library, on_delete=models.CASCADE, related_name="weekly_hours"
    )
    weekday = models.PositiveSmallIntegerField(choices=Weekday)
    opens = models.TimeField()
    closes = models.TimeField(
        help_text="At or before opening means the span runs overnight."
    )

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name_plural = "weekly hours"
        constraints = [
            models.CheckConstraint(
                condition=Q(weekday__gte=0, weekday__lte=6),
                name="weekly_hours_weekday_valid",
            ),
            models.CheckConstraint(
                condition=~Q(opens=F("closes")) | Q(opens="00:00"),
                name="weekly_hours_not_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}–{self.closes:%H:%M}"


class SpecialHours(models.Model):
    """Hours for one date that replace the weekly hours of that date."""

    library = models.ForeignKey(
        Library, on_delete=models.CASCADE, related_name="special_hours"
    )
    day = models.DateField()
    opens = models.TimeField()
    closes = models.TimeField(
        help_text="At or before opening means the span runs overnight."
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["day", "opens"]
        verbose_name_plural = "special hours"
        constraints = [
            models.CheckConstraint(
                condition=~Q(opens=F("closes")) | Q(opens="00:00"),
                name="special_hours_not_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.opens:%H:%M}–{self.closes:%H:%M}"


class Closure(models.Model):
    """Closed every day from `first` to `last` inclusive: holidays, closures."""

    library = models.ForeignKey(
        Library, on_delete=models.CASCADE, related_name="closures"
    )
    first = models.DateField()
    last = models.DateField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["first"]
        constraints = [
            models.CheckConstraint(
                condition=Q(last__gte=F("first")), name="closure_not_inverted"
            ),
        ]

    def __str__(self) -> str:
        if self.first == self.last:
            return f"{self.first} {self.reason}".strip()
        return f"{self.first}–{self.last} {self.reason}".strip()

    def clean(self) -> None:
        if self.first and self.last and self.last < self.first:
            raise ValidationError(
                {"last": "The last day cannot be before the first day."}
            )


class ServiceAreaKind(models.TextChoices):
    POSTAL_CODE = "postal_code", "postal code"
    PLACE = "place", "place name"


class ServiceArea(models.Model):
    """A postal code or place the library serves: chats from it count as in-area."""

    library = models.ForeignKey(
        Library, on_delete=models.CASCADE, related_name="service_areas"
    )
    kind = models.CharField(max_length=16, choices=ServiceAreaKind)
    value = models.CharField(max_length=100)

    class Meta:
        ordering = ["kind", "value"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ServiceAreaKind.values),
                name="service_area_kind_valid",
            ),
            models.UniqueConstraint(
                "library", "kind", Lower("value"), name="service_area_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value}"


class LocalInfoKind(models.TextChoices):
    CARDS = "cards", "Library cards (who may get one; non-residents)"
    BORROWING = "borrowing", "Borrowing and renewals"
    ILL = "ill", "Interlibrary loan"
    DATABASES = "databases", "Databases and remote access"
    CONTACTS = "contacts", "Contacts for escalation"
    ALERTS = "alerts", "Current alerts"
    OTHER = "other", "Other"


class LocalInfoSection(models.Model):
    """A staff-only section of a library's local info card, in Markdown."""

    library = models.ForeignKey(
        Library, on_delete=models.CASCADE, related_name="local_info"
    )
    kind = models.CharField(
        max_length=16, choices=LocalInfoKind, default=LocalInfoKind.OTHER
    )
    title = models.CharField(max_length=200)
    body = models.TextField(help_text="Markdown. Staff only: never shown to patrons.")
    position = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = "local info section"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=LocalInfoKind.values), name="local_info_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class LocalInfoChange(models.TextChoices):
    BASELINE = "baseline", "as it was before the first recorded change"
    CREATED = "created"
    CHANGED = "changed"
    DELETED = "deleted"
    RESTORED = "restored"


class LocalInfoVersion(models.Model):
    """A section of a local info card as one save left it: who, when, what changed.

    Written only by `libraries.local_info`; kept when its section is deleted, so
    a deleted section can be restored.
    """

    section = models.ForeignKey(
        LocalInfoSection,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="versions",
    )
    library = models.ForeignKey(
        Library, on_delete=models.CASCADE, related_name="local_info_versions"
    )
    change = models.CharField(max_length=16, choices=LocalInfoChange)
    kind = models.CharField(max_length=16, choices=LocalInfoKind)
    title = models.CharField(max_length=200)
    body = models.TextField()
    position = models.PositiveSmallIntegerField(default=0)
    saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="local_info_versions",
    )
    saved_at = models.DateTimeField()
    summary = models.TextField(
        blank=True, help_text="What changed: the fields, and a diff of the text."
    )

    class Meta:
        ordering = ["-saved_at", "-id"]
        verbose_name = "local info version"
        constraints = [
            models.CheckConstraint(
                condition=Q(change__in=LocalInfoChange.values),
                name="local_info_version_change_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["section", "-saved_at"], name="local_info_version_section"
            ),
            models.Index(
                fields=["library", "-saved_at"], name="local_info_version_library"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.title} ({self.get_change_display()} {self.saved_at:%Y-%m-%d %H:%M})"
        )


class OutdatedReport(models.Model):
    """A librarian's "this looks outdated" about a local info section."""

    library = models.ForeignKey(
        Library, on_delete=models.PROTECT, related_name="outdated_reports"
    )
    section = models.ForeignKey(
        LocalInfoSection,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="outdated_reports",
    )
    section_title = models.CharField(
        max_length=200, help_text="The section's title when reported."
    )
    librarian = models.ForeignKey(
        "Librarian", on_delete=models.PROTECT, related_name="outdated_reports"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField()
    emailed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resolved_outdated_reports",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "outdated local info report"
        indexes = [
            models.Index(
                fields=["library", "created_at"],
                condition=Q(resolved_at__isnull=True),
                name="outdated_report_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.section_title} ({self.created_at:%Y-%m-%d})"

    @property
    def is_resolved(self) -> bool:
        return self.resolved_at is not None


class Role(models.TextChoices):
    LIBRARIAN = "librarian", "librarian"
    LIBRARY_ADMIN = "library_admin", "library admin"
    CONSORTIUM_ADMIN = "consortium_admin", "consortium admin"


class Librarian(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="librarian"
    )
    library = models.ForeignKey(
        Library,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="librarians",
        help_text="Every librarian and library admin belongs to one library.",
    )
    role = models.CharField(max_length=20, choices=Role, default=Role.LIBRARIAN)
    display_name = models.CharField(
        max_length=100, help_text="Shown to patrons, e.g. a first name."
    )

    class Meta:
        ordering = ["library__name", "display_name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=Role.values), name="librarian_role_valid"
            ),
            models.CheckConstraint(
                condition=Q(role=Role.CONSORTIUM_ADMIN) | Q(library__isnull=False),
                name="librarian_has_library",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.library or 'consortium'})"

    @property
    def is_consortium_admin(self) -> bool:
        return self.role == Role.CONSORTIUM_ADMIN

    @property
    def is_library_admin(self) -> bool:
        return self.role == Role.LIBRARY_ADMIN
