"""Signal receivers: they only turn a signal into an event."""

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from chat import events, services
from libraries.signals import librarian_signed_off


@receiver(user_logged_out, dispatch_uid="chat.close_desks_on_logout")
def close_desks_on_logout(sender, request, user, **kwargs) -> None:
    # Fires before the session is flushed, so its key still names its desks.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        events.send_now(
            [events.session_desks_group(session_key)], {"type": "session.logout"}
        )


@receiver(librarian_signed_off, dispatch_uid="chat.turn_desks_away")
def turn_desks_away(sender, librarian_id: int, **kwargs) -> None:
    events.send_now(
        [events.librarian_desks_group(librarian_id)], {"type": "desk.signed_off"}
    )
    services.reroute_unstaffed()
