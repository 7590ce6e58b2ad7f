"""Librarians at their desks: presence, and what their coming and going moves."""

import logging
from datetime import datetime

from django.utils import timezone

from chat import selectors
from chat.models import (
    Conversation,
    ConversationStatus,
)
from chat.services.routing import (
    reroute_unstaffed,
)
from libraries import presence
from libraries.models import Librarian

logger = logging.getLogger(__name__)


def desk_heard(*, librarian: Librarian, socket_id: str, available: bool) -> None:
    presence.touch(
        library_id=librarian.library_id,
        librarian_id=librarian.pk,
        socket_id=socket_id,
        available=available,
    )


def desk_left(*, socket_id: str, now: datetime | None = None) -> int:
    """A desk socket closed or went away: chats its absence leaves unstaffed move on."""
    presence.drop(socket_id=socket_id)
    return reroute_unstaffed(now=now)


def expire_silent_desks(*, now: datetime | None = None) -> int:
    """Forget desks that stopped sending heartbeats and re-route what they left behind."""
    expired = presence.expire_desks()
    if expired:
        logger.info("presence expired for %d desk socket(s)", len(expired))
    return reroute_unstaffed(now=now)


def sign_off_after_closing(*, now: datetime | None = None) -> int:
    """At closing time, sign off every available librarian of a closed library who
    is not in a chat; those mid-chat stay until they finish."""
    from libraries.models import Librarian as LibrarianModel
    from libraries.services import sign_off_librarian

    now = now or timezone.now()
    staffing = selectors.staffing_snapshot(now=now)
    closed = {lid for lid, s in staffing.items() if not s.is_open}
    present = presence.available_librarians()
    candidates = {lbr for lib, ids in present.items() if lib in closed for lbr in ids}
    if not candidates:
        return 0
    busy = set(
        Conversation.objects.filter(
            status=ConversationStatus.ACTIVE, librarian_id__in=candidates
        ).values_list("librarian_id", flat=True)
    )
    signed_off = 0
    for librarian in LibrarianModel.objects.filter(pk__in=candidates - busy):
        sign_off_librarian(librarian=librarian, acting_user=None)
        signed_off += 1
    return signed_off
