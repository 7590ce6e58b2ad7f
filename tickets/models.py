"""Tickets, their threads of messages, inbound email as received, attachments."""

from django.db import models
from django.db.models import Q


class TicketStatus(models.TextChoices):
    NEW = "new"
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class TicketSource(models.TextChoices):
    QUESTION_FORM = "question_form", "question form"
    FOLLOW_UP = "follow_up", "follow-up from a chat"
    CHAT_OFFLINE = "chat_offline", "chat nobody could answer"
    CHAT_ABANDONED = "chat_abandoned", "chat the patron left"
    FOLLOW_UP_SELF = "follow_up_self", "follow-up by the closing librarian"
    FOLLOW_UP_HOME = "follow_up_home", "follow-up by the patron's library"
    EMAIL = "email"


class Direction(models.TextChoices):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class OutboundKind(models.TextChoices):
    NONE = "", "not outgoing"
    CONFIRMATION = "confirmation"
    REPLY = "reply"
    TRANSCRIPT = "transcript"


class InboundStatus(models.TextChoices):
    PENDING = "pending"
    FILED = "filed"
    NEEDS_ATTENTION = "needs_attention", "needs attention"
    IGNORED = "ignored"


class TicketCounter(models.Model):
    """The last reference number handed out in one two-digit year."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"RD-{self.year:02d}: {self.last}"


class Ticket(models.Model):
    reference = models.CharField(max_length=20, unique=True, editable=False)
    library = models.ForeignKey(
        "libraries.Library", on_delete=models.PROTECT, related_name="tickets"
    )
    patron_name = models.CharField(max_length=100, blank=True)
    patron_email = models.EmailField(blank=True)
    declared_home_library = models.CharField(max_length=200, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    subject = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=TicketStatus, default=TicketStatus.NEW
    )
    source = models.CharField(max_length=20, choices=TicketSource)
    claimed_by = models.ForeignKey(
        "libraries.Librarian",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="claimed_tickets",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    in_pool = models.BooleanField(
        default=False, help_text="Any member library may claim it."
    )
    pooled_at = models.DateTimeField(null=True, blank=True)
    at_risk = models.BooleanField(default=False)
    is_overdue = models.BooleanField(default=False)
    pool_at = models.DateTimeField(help_text="Joins the shared pool if unanswered.")
    risk_at = models.DateTimeField(help_text="Counts as at risk if unanswered.")
    due_by = models.DateTimeField(help_text="The first answer is promised by then.")
    first_answered_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField()
    created_at = models.DateTimeField()
    # One ticket per conversation. The transcript is copied into the ticket, so
    # purging the conversation later keeps the ticket whole.
    conversation = models.OneToOneField(
        "chat.Conversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ticket",
    )
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["due_by"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=TicketStatus.values), name="ticket_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(source__in=TicketSource.values), name="ticket_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(claimed_by__isnull=True) | Q(claimed_at__isnull=False),
                name="claimed_ticket_has_claim_time",
            ),
            models.CheckConstraint(
                condition=~Q(status=TicketStatus.CLOSED) | Q(closed_at__isnull=False),
                name="closed_ticket_has_close_time",
            ),
        ]
        indexes = [
            models.Index(fields=["library", "status"], name="ticket_library_status"),
            models.Index(
                fields=["due_by"],
                condition=Q(first_answered_at__isnull=True)
                & Q(status__in=["new", "open"]),
                name="ticket_unanswered_due",
            ),
            models.Index(
                fields=["status"], condition=Q(in_pool=True), name="ticket_pool"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.subject}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("tickets:ticket-detail", args=[self.reference])

    @property
    def is_answered(self) -> bool:
        return self.first_answered_at is not None

    @property
    def is_closed(self) -> bool:
        return self.status == TicketStatus.CLOSED


class TicketMessage(models.Model):
    ticket = models.ForeignKey(
        Ticket, on_delete=models.CASCADE, related_name="messages"
    )
    direction = models.CharField(max_length=10, choices=Direction)
    kind = models.CharField(
        max_length=16, choices=OutboundKind, blank=True, default=OutboundKind.NONE
    )
    author = models.CharField(max_length=200, blank=True)
    librarian = models.ForeignKey(
        "libraries.Librarian",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ticket_messages",
    )
    from_address = models.EmailField(blank=True)
    to_address = models.EmailField(blank=True)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(help_text="The visible text: quoted history removed.")
    full_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)
    is_auto_reply = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    sending_since = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    send_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(direction__in=Direction.values),
                name="ticket_message_direction_valid",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=OutboundKind.values),
                name="ticket_message_kind_valid",
            ),
            models.UniqueConstraint(
                fields=["message_id"],
                condition=~Q(message_id=""),
                name="ticket_message_id_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["sent_at"],
                condition=Q(direction="outbound", sent_at__isnull=True),
                name="ticket_message_unsent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id} {self.direction} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_sent(self) -> bool:
        return self.sent_at is not None


class InboundEmail(models.Model):
    """A raw inbound message exactly as received, stored before anything reads it."""

    raw = models.BinaryField()
    size = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField()
    status = models.CharField(
        max_length=20, choices=InboundStatus, default=InboundStatus.PENDING
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Filled from the parsed message when it could be read.
    message_id_header = models.CharField("Message-ID", max_length=255, blank=True)
    from_address = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    library = models.ForeignKey(
        "libraries.Library",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="inbound_emails",
        help_text="The library it was addressed to or filed for, when known.",
    )
    ticket = models.ForeignKey(
        Ticket,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="inbound_emails",
    )
    message = models.ForeignKey(
        TicketMessage,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_emails",
    )

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "inbound email"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=InboundStatus.values),
                name="inbound_email_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=Q(status__in=["pending", "needs_attention"]),
                name="inbound_email_unfiled",
            ),
        ]

    def __str__(self) -> str:
        return f"inbound {self.pk} ({self.status})"


class Attachment(models.Model):
    message = models.ForeignKey(
        TicketMessage, on_delete=models.CASCADE, related_name="attachments"
    )
    filename = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    data = models.BinaryField(blank=True)
    is_dropped = models.BooleanField(
        default=False, help_text="Over the size limit: not kept, only listed."
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.filename
