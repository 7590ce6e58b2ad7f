"""Every change to a conversation: start, route, accept, message, transfer, close.

Split by concern; import from here (`from chat import services`).
"""

from chat.services.desks import (
    desk_heard,
    desk_left,
    expire_silent_desks,
    sign_off_after_closing,
)
from chat.services.messages import (
    alibrarian_messages_after,
    amessages_after,
    apost_message,
    librarian_messages_after,
    post_message,
    typing_target,
)
from chat.services.queue import (
    TRANSFER_NOTICE,
    aaccept_conversation,
    abandon_if_gone,
    accept_conversation,
    apatron_opened,
    close_as_self_served,
    close_conversation,
    patron_close,
    patron_connected,
    patron_disconnected,
    patron_opened,
    take_offline_for_follow_up,
    transfer_conversation,
)
from chat.services.routing import (
    TOKEN_SALT,
    check_patron_token,
    escalate_if_due,
    patron_history,
    patron_status,
    patron_token,
    reroute_unstaffed,
    start_conversation,
    sweep_due_conversations,
)

__all__ = [
    "TOKEN_SALT",
    "TRANSFER_NOTICE",
    "aaccept_conversation",
    "abandon_if_gone",
    "accept_conversation",
    "alibrarian_messages_after",
    "amessages_after",
    "apatron_opened",
    "apost_message",
    "check_patron_token",
    "close_as_self_served",
    "close_conversation",
    "desk_heard",
    "desk_left",
    "escalate_if_due",
    "expire_silent_desks",
    "librarian_messages_after",
    "patron_close",
    "patron_connected",
    "patron_disconnected",
    "patron_history",
    "patron_opened",
    "patron_status",
    "patron_token",
    "post_message",
    "reroute_unstaffed",
    "sign_off_after_closing",
    "start_conversation",
    "sweep_due_conversations",
    "take_offline_for_follow_up",
    "transfer_conversation",
    "typing_target",
]
