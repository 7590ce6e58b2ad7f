"""Conversations, their messages and the queue steps they pass through."""

import uuid

from django.db import models
from django.db.models import Q


class ConversationStatus(models.TextChoices):
    WAITING = "waiting"
    ACTIVE = "active"
    OFFLINE = "offline"
    CLOSED = "closed"
    ABANDONED = "abandoned"


class QueueStep(models.TextChoices):
    LOCAL = "local"
    PARTNER = "partner"
    OVERFLOW = "overflow"
    OFFLINE = "offline"


class Outcome(models.TextChoices):
    ANSWERED = "answered"
    FOLLOW_UP_SELF = "follow_up_self", "follow-up by me"
    FOLLOW_UP_HOME = "follow_up_home", "follow-up by the patron's library"
    LOST_CONNECTION = "lost_connection", "lost connection"
    SPAM = "spam", "spam or abuse"
    PRACTICE = "practice"
    SELF_SERVED = "self_served", "answered by the FAQ"


class Sender(models.TextChoices):
    PATRON = "patron"
    LIBRARIAN = "librarian"
    SYSTEM = "system"


class ClosedBy(models.TextChoices):
    PATRON = "patron"
    LIBRARIAN = "librarian"
    SYSTEM = "system"


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    origin_library = models.ForeignKey(
        "libraries.Library", on_delete=models.PROTECT, related_name="conversations"
    )
    # The library whose local queue the chat is (or was last) in: the origin, the
    # patron's home library standing in for it, or a transfer's target.
    queue_library = models.ForeignKey(
        "libraries.Library",
        on_delete=models.PROTECT,
        related_name="queued_conversations",
    )
    home_library = models.ForeignKey(
        "libraries.Library",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="home_conversations",
        help_text="The patron's home library when it is a member.",
    )
    declared_home_library = models.CharField(max_length=200, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    is_in_area = models.BooleanField(default=False)
    patron_name = models.CharField(max_length=100, blank=True)
    patron_email = models.EmailField(blank=True)
    status = models.CharField(
        max_length=16, choices=ConversationStatus, default=ConversationStatus.WAITING
    )
    queue = models.CharField(max_length=16, choices=QueueStep, blank=True)
    offered_library_ids = models.JSONField(default=list, blank=True)
    escalate_at = models.DateTimeField(null=True, blank=True)
    librarian = models.ForeignKey(
        "libraries.Librarian",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="conversations",
    )
    answering_library = models.ForeignKey(
        "libraries.Library",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="answered_conversations",
    )
    transfer_note = models.CharField(max_length=1000, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome, blank=True)
    close_note = models.CharField(max_length=2000, blank=True)
    tags = models.JSONField(default=list, blank=True)
    closed_by = models.CharField(max_length=16, choices=ClosedBy, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    offered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the chat entered its current step."
    )
    waiting_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the patron started waiting: creation, or the last transfer.",
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    first_reply_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    patron_sockets = models.PositiveIntegerField(
        default=0, help_text="Patron sockets open now, across every web process."
    )
    patron_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="When the patron was last connected."
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ConversationStatus.values),
                name="conversation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(queue__in=[*QueueStep.values, ""]),
                name="conversation_queue_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status=ConversationStatus.ACTIVE)
                | Q(librarian__isnull=False),
                name="active_conversation_has_librarian",
            ),
            models.CheckConstraint(
                condition=~Q(status=ConversationStatus.WAITING)
                | Q(escalate_at__isnull=False),
                name="waiting_conversation_has_deadline",
            ),
        ]
        indexes = [
            models.Index(
                fields=["escalate_at"],
                condition=Q(status="waiting"),
                name="waiting_by_deadline",
            ),
            models.Index(
                fields=["librarian"],
                condition=Q(status="active"),
                name="active_by_librarian",
            ),
            models.Index(
                fields=["origin_library", "created_at"],
                name="conversation_origin_created",
            ),
        ]

    def __str__(self) -> str:
        return f"conversation {self.pk} ({self.status})"

    @property
    def is_waiting(self) -> bool:
        return self.status == ConversationStatus.WAITING


class Message(models.Model):
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        # message_seq_unique (conversation, seq) serves every lookup by
        # conversation; a second index would only cost each insert.
        db_index=False,
    )
    seq = models.PositiveIntegerField()
    sender = models.CharField(max_length=16, choices=Sender)
    librarian = models.ForeignKey(
        "libraries.Librarian",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
    )
    name = models.CharField(max_length=100, blank=True)
    body = models.TextField()
    client_id = models.CharField(max_length=100, blank=True)
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "seq"], name="message_seq_unique"
            ),
            models.UniqueConstraint(
                fields=["conversation", "sender", "client_id"],
                condition=~Q(client_id=""),
                name="message_client_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(seq__gte=1), name="message_seq_positive"
            ),
            models.CheckConstraint(
                condition=Q(sender__in=Sender.values), name="message_sender_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id} #{self.seq} ({self.sender})"


class ConversationStep(models.Model):
    """One queue step a conversation passed through, for waits per step and credit."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="steps"
    )
    step = models.CharField(max_length=16, choices=QueueStep)
    queue_library = models.ForeignKey(
        "libraries.Library",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="conversation_steps",
    )
    library_ids = models.JSONField(default=list, blank=True)
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    left_because = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["conversation", "entered_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(step__in=QueueStep.values), name="conversation_step_valid"
            ),
        ]
        indexes = [models.Index(fields=["step", "entered_at"], name="step_entered")]

    def __str__(self) -> str:
        return (
            f"{self.conversation_id} {self.step} at {self.entered_at:%Y-%m-%d %H:%M:%S}"
        )
