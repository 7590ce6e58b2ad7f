"""Signal receivers: they only turn a signal into an event."""

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from chat import events


@receiver(user_logged_out, dispatch_uid="chat.close_desks_on_logout")
def close_desks_on_logout(sender, request, user, **kwargs) -> None:
    # Fires before the session is flushed, so its key still names its desks.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        events.send_now([events.session_desks_group(session_key)], {"type": "session.logout"})
