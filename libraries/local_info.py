"""Local info cards kept true: a version for every save, restore, how long ago a
card was verified, stale-card notices and "this looks outdated" reports.

Every write to a local info section goes through `save_local_info_section` or
`delete_local_info_section` (the admin included), so the history is complete
from the first edit on. Sections that existed before any recorded edit (the
demo's, imported ones) get a "baseline" version of their old state the first
time they change, so that state stays restorable.
"""

import difflib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from libraries import selectors, tasks
from libraries.models import (
    Librarian,
    Library,
    LocalInfoChange,
    LocalInfoSection,
    LocalInfoVersion,
    OutdatedReport,
    Role,
)
from refdesk.errors import Forbidden, NotFound, ValidationFailed

logger = logging.getLogger(__name__)

MAX_NOTE_CHARS = 2000
_DIFF_CONTEXT = 1


# Pure: what changed, how old a verification is
# ----------------------------------------------------------------------
@dataclass(frozen=True)
class SectionState:
    kind: str
    title: str
    body: str
    position: int


def state_of(section: LocalInfoSection | LocalInfoVersion) -> SectionState:
    return SectionState(
        kind=section.kind,
        title=section.title,
        body=section.body,
        position=section.position,
    )


def describe_change(before: SectionState | None, after: SectionState | None) -> str:
    """A short account of a save: the fields that changed and a diff of the body."""
    if before is None:
        return "Created."
    if after is None:
        return "Deleted."
    lines = []
    if before.title != after.title:
        lines.append(f"Title: {before.title!r} → {after.title!r}")
    if before.kind != after.kind:
        lines.append(f"Kind: {before.kind} → {after.kind}")
    if before.position != after.position:
        lines.append(f"Position: {before.position} → {after.position}")
    if before.body != after.body:
        lines.append("Body:")
        lines.extend(
            difflib.unified_diff(
                before.body.splitlines(),
                after.body.splitlines(),
                fromfile="before",
                tofile="after",
                lineterm="",
                n=_DIFF_CONTEXT,
            )
        )
    return "\n".join(lines) or "No change."


@dataclass(frozen=True)
class Verification:
    days_ago: int | None  # None: never verified
    is_stale: bool
    stale_after_days: int


def verification(
    verified_at: datetime | None, *, now: datetime, stale_days: int
) -> Verification:
    """How many whole days ago a card was verified, and whether that is too long."""
    if verified_at is None:
        return Verification(None, True, stale_days)
    days = max(0, (now - verified_at).days)
    return Verification(days, days >= stale_days, stale_days)


def stale_days() -> int:
    return settings.REFDESK_LOCAL_INFO_STALE_DAYS


def card_verification(library: Library, *, now: datetime) -> Verification:
    return verification(
        library.local_info_verified_at, now=now, stale_days=stale_days()
    )


# Versions
# ----------------------------------------------------------------------
def _record(
    section: LocalInfoSection,
    *,
    change: str,
    state: SectionState,
    user: AbstractBaseUser | None,
    at: datetime,
    summary: str,
) -> LocalInfoVersion:
    return LocalInfoVersion.objects.create(
        section=section,
        library_id=section.library_id,
        change=change,
        saved_by=user if user is not None and user.is_authenticated else None,
        saved_at=at,
        summary=summary,
        **asdict(state),
    )


def _baseline_if_unrecorded(stored: LocalInfoSection) -> None:
    if not LocalInfoVersion.objects.filter(section=stored).exists():
        _record(
            stored,
            change=LocalInfoChange.BASELINE,
            state=state_of(stored),
            user=None,
            at=stored.updated_at,
            summary="As it was before the first recorded change.",
        )


@transaction.atomic
def save_local_info_section(
    *,
    section: LocalInfoSection,
    user: AbstractBaseUser | None,
    change: str | None = None,
    summary_prefix: str = "",
    now: datetime | None = None,
) -> LocalInfoSection:
    """Save a new or edited section and record the version it leaves.

    A save that changes nothing records nothing.
    """
    now = now or timezone.now()
    stored = (
        LocalInfoSection.objects.select_for_update(no_key=True)
        .filter(pk=section.pk)
        .first()
        if section.pk
        else None
    )
    before = state_of(stored) if stored else None
    after = state_of(section)
    if (
        stored is not None
        and before == after
        and stored.library_id == section.library_id
    ):
        return stored
    if stored is not None:
        _baseline_if_unrecorded(stored)
    section.save()
    summary = describe_change(before, after)
    _record(
        section,
        change=change
        or (LocalInfoChange.CHANGED if stored else LocalInfoChange.CREATED),
        state=after,
        user=user,
        at=now,
        summary=f"{summary_prefix}{summary}",
    )
    logger.info(
        "local info section %s saved (library %s)", section.pk, section.library_id
    )
    return section


@transaction.atomic
def delete_local_info_section(
    *,
    section: LocalInfoSection,
    user: AbstractBaseUser | None,
    now: datetime | None = None,
) -> None:
    """Delete a section; its versions stay, ending with a "deleted" one to restore."""
    now = now or timezone.now()
    stored = (
        LocalInfoSection.objects.select_for_update(no_key=True)
        .filter(pk=section.pk)
        .first()
    )
    if stored is None:
        return
    _baseline_if_unrecorded(stored)
    _record(
        stored,
        change=LocalInfoChange.DELETED,
        state=state_of(stored),
        user=user,
        at=now,
        summary="Deleted.",
    )
    stored.delete()
    logger.info(
        "local info section %s deleted (library %s)", section.pk, stored.library_id
    )


def _check_administers(user: AbstractBaseUser, library_id: int) -> None:
    if not selectors.libraries_administered_by(user).filter(pk=library_id).exists():
        raise Forbidden("you may only change your own library's local info")


@transaction.atomic
def restore_local_info_version(
    *, version_id: int, user: AbstractBaseUser, now: datetime | None = None
) -> LocalInfoSection:
    """Put a section back as a version left it; a deleted section comes back as new.

    The restore is itself a new version, so it can be undone the same way.
    """
    version = LocalInfoVersion.objects.filter(pk=version_id).first()
    if version is None:
        raise NotFound("no such local info version")
    _check_administers(user, version.library_id)
    section = (
        LocalInfoSection.objects.select_for_update(no_key=True)
        .filter(pk=version.section_id)
        .first()
        if version.section_id
        else None
    )
    if section is None:
        section = LocalInfoSection(library_id=version.library_id)
    for field, value in asdict(state_of(version)).items():
        setattr(section, field, value)
    when = timezone.localtime(version.saved_at).strftime("%Y-%m-%d %H:%M %Z")
    return save_local_info_section(
        section=section,
        user=user,
        change=LocalInfoChange.RESTORED,
        summary_prefix=f"Restored the version of {when}.\n",
        now=now,
    )


def versions_of(section_id: int) -> QuerySet[LocalInfoVersion]:
    return LocalInfoVersion.objects.filter(section_id=section_id).select_related(
        "saved_by"
    )


# Stale cards
# ----------------------------------------------------------------------
def stale_condition(*, now: datetime) -> Q:
    cutoff = now - timedelta(days=stale_days())
    return Q(local_info_verified_at__isnull=True) | Q(
        local_info_verified_at__lte=cutoff
    )


def stale_libraries(*, now: datetime) -> QuerySet[Library]:
    return Library.objects.filter(stale_condition(now=now))


def flag_stale_local_info(*, now: datetime | None = None) -> list[int]:
    """Tell each library whose card is stale, at most once per stale period.

    One conditional update per library claims the notice, so two beat runs (or
    two workers) never send it twice; the mail goes after commit, with retries.
    """
    now = now or timezone.now()
    period = timedelta(days=stale_days())
    flagged = []
    for library_id in stale_libraries(now=now).values_list("pk", flat=True):
        with transaction.atomic():
            won = (
                Library.objects.filter(pk=library_id)
                .filter(stale_condition(now=now))
                .filter(
                    Q(local_info_stale_notified_at__isnull=True)
                    | Q(local_info_stale_notified_at__lte=now - period)
                )
                .update(local_info_stale_notified_at=now)
            )
            if won:
                tasks.send_stale_local_info_email.delay_on_commit(
                    library_id, now.isoformat()
                )
                flagged.append(library_id)
    if flagged:
        logger.info("stale local info flagged for libraries %s", flagged)
    return flagged


def _library_admin_emails(library: Library) -> list[str]:
    return list(
        Librarian.objects.filter(
            library=library, role=Role.LIBRARY_ADMIN, user__is_active=True
        )
        .exclude(user__email="")
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )


def send_stale_local_info_email(*, library_id: int, notified_at: datetime) -> bool:
    """Send one stale-card notice, unless the card was verified or re-flagged since."""
    library = Library.objects.filter(pk=library_id).first()
    if library is None or library.local_info_stale_notified_at != notified_at:
        return False
    status = card_verification(library, now=notified_at)
    if not status.is_stale:
        return False
    recipients = list(
        dict.fromkeys([*_library_admin_emails(library), library.contact_email])
    )
    recipients = [r for r in recipients if r]
    if not recipients:
        return False
    age = (
        "has never been verified"
        if status.days_ago is None
        else f"was last verified {status.days_ago} days ago"
    )
    body = (
        f"The local info card of {library.name} {age}.\n\n"
        "Librarians of other member libraries answer your patrons with it at any "
        "hour, so out-of-date card rules, hours notes or contacts reach patrons as "
        "wrong answers.\n\n"
        "Please read each section, fix what changed, and mark the card verified in "
        f"refdesk's admin: {reverse('admin:libraries_library_change', args=[library.pk])}\n\n"
        f"Cards are flagged when not verified for {status.stale_after_days} days."
    )
    EmailMessage(
        subject=f"[refdesk] {library.name}: please check your local info card",
        body=body,
        to=recipients,
    ).send()
    logger.info("stale local info notice sent for library %s", library.pk)
    return True


# Outdated reports
# ----------------------------------------------------------------------
@transaction.atomic
def report_outdated_local_info(
    *,
    section_id: int,
    librarian: Librarian,
    note: str = "",
    now: datetime | None = None,
) -> OutdatedReport:
    """A librarian flags a section as outdated; the library's contact is emailed."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise ValidationFailed(
            f"note: at most {MAX_NOTE_CHARS} characters",
            errors={"note": [f"At most {MAX_NOTE_CHARS} characters."]},
        )
    section = (
        LocalInfoSection.objects.select_related("library").filter(pk=section_id).first()
    )
    if section is None:
        raise NotFound("no such local info section")
    report = OutdatedReport.objects.create(
        library=section.library,
        section=section,
        section_title=section.title,
        librarian=librarian,
        note=note,
        created_at=now or timezone.now(),
    )
    tasks.send_outdated_report_email.delay_on_commit(report.pk)
    logger.info(
        "outdated report %s on section %s by librarian %s",
        report.pk,
        section.pk,
        librarian.pk,
    )
    return report


def send_outdated_report_email(*, report_id: int, now: datetime | None = None) -> bool:
    """Email a report to its library's contact once; a retried task sends nothing more."""
    report = (
        OutdatedReport.objects.select_related(
            "library", "librarian__user", "librarian__library"
        )
        .filter(pk=report_id, emailed_at__isnull=True)
        .first()
    )
    if report is None or not report.library.contact_email:
        return False
    reporter = report.librarian
    reporter_library = (
        reporter.library.name if reporter.library_id else "the consortium"
    )
    body = (
        f"{reporter.display_name} ({reporter_library}) reports that this section of "
        f"{report.library.name}'s local info card looks outdated:\n\n"
        f"    {report.section_title}\n\n"
        f"Their note:\n{report.note or '(no note)'}\n\n"
        "Please check the section in refdesk's admin and mark the report resolved: "
        f"{reverse('admin:libraries_outdatedreport_change', args=[report.pk])}"
    )
    reply_to = [reporter.user.email] if reporter.user.email else []
    EmailMessage(
        subject=f"[refdesk] Outdated local info: {report.section_title}",
        body=body,
        to=[report.library.contact_email],
        reply_to=reply_to,
    ).send()
    OutdatedReport.objects.filter(pk=report.pk, emailed_at__isnull=True).update(
        emailed_at=now or timezone.now()
    )
    return True


@transaction.atomic
def resolve_outdated_report(
    *, report_id: int, user: AbstractBaseUser, now: datetime | None = None
) -> bool:
    """Mark a report dealt with; returns False when it already was."""
    report = OutdatedReport.objects.filter(pk=report_id).first()
    if report is None:
        raise NotFound("no such report")
    _check_administers(user, report.library_id)
    return bool(
        OutdatedReport.objects.filter(pk=report_id, resolved_at__isnull=True).update(
            resolved_at=now or timezone.now(),
            resolved_by=user if user.is_authenticated else None,
        )
    )


def open_reports_for(libraries: QuerySet[Library]) -> QuerySet[OutdatedReport]:
    return OutdatedReport.objects.filter(
        library__in=libraries, resolved_at__isnull=True
    )
