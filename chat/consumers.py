"""WebSocket consumers: the patron's chat socket and the librarian's desk socket.

Thin by design: authenticate, join groups, parse frames with `protocol`, call
services (through `database_sync_to_async`, except the message path, the
accept, the patron socket's opening, a desk's history reads and any socket's
read to fill a gap in `seq` order, which have async services of their own),
and turn layer events into frames.
"""

import contextlib
import functools
import logging
import time
from collections.abc import Hashable
from functools import cached_property
from urllib.parse import parse_qs
from uuid import UUID

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from chat import events, protocol, selectors, services
from chat.exceptions import ConversationNotFound
from chat.lanes import Lanes, Work
from chat.models import Sender
from chat.ordering import SeqOrder, gap_reads
from refdesk.aio import dispatch_each
from refdesk.errors import Forbidden, RefdeskError

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
# A closing socket lets the frames it already took finish (a message stored, an
# accept made) before its own clean-up runs, for at most this long.
DRAIN_SECONDS = 10

patron_history = database_sync_to_async(services.patron_history)
patron_close = database_sync_to_async(services.patron_close)
patron_disconnected = database_sync_to_async(services.patron_disconnected)
typing_target = database_sync_to_async(services.typing_target)
librarian_for_desk = database_sync_to_async(selectors.librarian_for_desk)
queue_for_library = database_sync_to_async(selectors.queue_for_library)
active_conversations_of = database_sync_to_async(selectors.active_conversations_of)
accepted_payloads = database_sync_to_async(selectors.accepted_payloads)
close_conversation = database_sync_to_async(services.close_conversation)
transfer_conversation = database_sync_to_async(services.transfer_conversation)
desk_heard = database_sync_to_async(services.desk_heard)
desk_left = database_sync_to_async(services.desk_left)
reroute_unstaffed = database_sync_to_async(services.reroute_unstaffed)


class RefdeskConsumer(AsyncJsonWebsocketConsumer):
    """Turns oversized, non-JSON or refused frames into error frames; never closes
    the socket for them, as PROTOCOL.md requires."""

    async def __call__(self, scope, receive, send):
        """Channels' `AsyncConsumer.__call__`, reading the socket and the layer
        with `refdesk.aio.dispatch_each` (a reader task each for the socket's
        life) instead of Channels' loop (a new task and waiter per event, which
        the garbage collector's young passes then walked: issue 7)."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(
                self.channel_layer.receive, self.channel_name
            )
            sources.append(self.channel_receive)
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            await dispatch_each(sources, self.dispatch)

    async def dispatch(self, message):
        """Channels' dispatch without its `aclose_old_connections()` before each
        handler.

        That call is a `sync_to_async` hop onto the one thread a process runs
        all its sync database work on, so every frame and every layer event of
        every socket would wait there behind accepts and connects (issue 7
        measured it in the p99). It buys nothing here: the handlers reach the
        ORM only through `database_sync_to_async`, which closes stale
        connections before and after each call, and the message path uses its
        own async pool (`refdesk.asyncdb`).
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    @cached_property
    def lanes(self) -> Lanes:
        return Lanes()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        size = (
            len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        )
        if size > protocol.MAX_SOCKET_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        content: dict = {}
        try:
            content = protocol.decode_frame(text_data, bytes_data)
            await self.on_frame(content)
        except RefdeskError as error:
            await self.send_error(error, content)

    async def send_error(self, error: RefdeskError, content: dict) -> None:
        await self.send_json(
            protocol.error(
                error.code,
                error.detail,
                conversation=_context(content, "conversation"),
                client_id=_context(content, "client_id"),
            )
        )

    async def in_lane(self, key: Hashable, content: dict, work: Work) -> None:
        """Run a frame's work in `key`'s lane (`chat.lanes`): after the earlier
        frames of that conversation, beside the others, while this socket goes
        on taking frames and events. Errors are answered as `receive` answers
        them; anything else is logged and closes the socket (1011), as an
        exception escaping a consumer does."""

        async def run() -> None:
            try:
                await work()
            except RefdeskError as error:
                await self.send_error(error, content)
            except Exception:
                logger.exception(
                    "%s: a %r frame failed", type(self).__name__, content.get("type")
                )
                await self.close(code=CLOSE_SERVER_ERROR)

        await self.lanes.submit(key, run)

    async def websocket_disconnect(self, message):
        if "lanes" in self.__dict__:
            await self.lanes.drain(DRAIN_SECONDS)
        await super().websocket_disconnect(message)

    async def send_json(self, content, close=False):
        try:
            await super().send_json(content, close=close)
        except OSError:
            # The client is closing; its disconnect event still arrives
            # (STACK-NOTES.md: an exception here would end the consumer silently).
            logger.debug("dropped a frame to a closing socket")

    async def refuse(self, code: int) -> None:
        """Complete the handshake, then close, so the client sees the code."""
        await self.accept()
        await self.close(code=code)

    async def on_frame(self, content: dict) -> None:
        """Handle one decoded frame; each socket type defines its own."""
        raise NotImplementedError(f"{type(self).__name__} must handle frames")


def _context(content: dict, key: str) -> str | None:
    value = content.get(key) if isinstance(content, dict) else None
    return value if isinstance(value, str) and len(value) <= 100 else None


class PatronConsumer(RefdeskConsumer):
    """`/ws/chat/{id}/?token=…&after_seq=N`: the patron's side of one conversation."""

    conversation_id: UUID
    joined = False
    order: SeqOrder | None = None

    async def connect(self):
        self.conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        query = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        try:
            services.check_patron_token(
                conversation_id=self.conversation_id,
                token=(query.get("token") or [""])[0],
            )
        except Forbidden:
            await self.refuse(CLOSE_FORBIDDEN)
            return
        except RefdeskError:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        try:
            after_seq = max(0, int((query.get("after_seq") or ["0"])[0]))
        except ValueError:
            after_seq = 0
        group = events.conversation_group(self.conversation_id)
        # Join before reading history, so nothing stored in between is missed.
        await self.channel_layer.group_add(group, self.channel_name)
        try:
            opened = await services.apatron_opened(
                conversation_id=self.conversation_id, after_seq=after_seq
            )
        except ConversationNotFound:  # purged since its token was issued
            await self.channel_layer.group_discard(group, self.channel_name)
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        self.joined = True
        await self.accept()
        await self.send_history(after_seq, *opened)

    async def send_history(
        self, after_seq: int, status: dict, frames: list[dict]
    ) -> int:
        """Send the status and the stored messages after `after_seq`, then let
        live messages through from the last one sent."""
        await self.send_json(status)
        last_seq = after_seq
        for frame in frames:
            await self.send_json(frame)
            last_seq = frame["seq"]
        if self.order is None:
            self.order = SeqOrder(
                self.send_json, self.fetch_after, last_seq, gate=gap_reads()
            )
        self.order.sent_up_to(last_seq)
        return last_seq

    async def fetch_after(self, after_seq: int) -> list[dict]:
        return await services.amessages_after(
            conversation_id=self.conversation_id, after_seq=after_seq
        )

    async def disconnect(self, code):
        if self.order is not None:
            self.order.close()
        if self.joined:
            await self.channel_layer.group_discard(
                events.conversation_group(self.conversation_id), self.channel_name
            )
            await patron_disconnected(conversation_id=self.conversation_id)

    async def on_frame(self, content: dict) -> None:
        frame = protocol.parse_patron_frame(content)
        if isinstance(frame, protocol.Resume):
            # Here, not in the lane: live messages wait until the history is out.
            last_seq = await self.send_history(
                frame.after_seq,
                *await patron_history(
                    conversation_id=self.conversation_id, after_seq=frame.after_seq
                ),
            )
            await self.send_json({"type": "resumed", "last_seq": last_seq})
            return
        await self.in_lane(None, content, lambda: self.act(frame))

    async def act(self, frame) -> None:
        match frame:
            case protocol.SendMessage(body=body, client_id=client_id):
                message, stored = await services.apost_message(
                    conversation_id=self.conversation_id,
                    sender=Sender.PATRON,
                    body=body,
                    client_id=client_id,
                )
                if not stored:  # a retry: the stored message is the acknowledgement
                    await self.send_json(message)
            case protocol.Typing():
                for group in await typing_target(conversation_id=self.conversation_id):
                    await self.channel_layer.group_send(
                        group,
                        {
                            "type": "desk.typing",
                            "conversation": str(self.conversation_id),
                            "sender": "patron",
                        },
                    )
            case protocol.Close():
                await patron_close(conversation_id=self.conversation_id)

    async def conversation_message(self, event):
        if self.order is None:  # before the history went out: it will include this
            return
        await self.order.push(event["message"])

    async def conversation_status(self, event):
        await self.send_json(event["status"])

    async def conversation_typing(self, event):
        await self.send_json({"type": "typing", "sender": event["sender"]})


PRESENCE = "presence"  # the desk's lane for presence refreshes (heartbeats)


class DeskConsumer(RefdeskConsumer):
    """`/ws/desk/`: a librarian's queue, presence and chats (Django session)."""

    librarian = None
    groups_joined: tuple[str, ...] = ()

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        self.librarian = await librarian_for_desk(user.pk)
        if self.librarian is None:
            await self.refuse(CLOSE_FORBIDDEN)
            return
        session = self.scope.get("session")
        groups = [
            events.library_desks_group(self.librarian.library_id),
            events.librarian_desks_group(self.librarian.pk),
        ]
        if session is not None and session.session_key:
            groups.append(events.session_desks_group(session.session_key))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = tuple(groups)
        self.in_view: set[str] = set()
        self.orders: dict[str, SeqOrder] = {}
        self.followed: set[str] = set()
        self.available = True
        self.last_heard = 0.0
        await self.accept()
        await self.heard()
        await self.send_presence()
        await self.send_queue()
        owned = await active_conversations_of(self.librarian.pk)
        if owned:
            # Join first, then read: what is stored in between is in the history.
            for conversation in owned:
                await self.follow(str(conversation.id))
            for frame in await accepted_payloads(owned):
                self.track(frame)
                await self.send_json(frame)

    async def disconnect(self, code):
        for conversation_id in list(getattr(self, "followed", ())):
            await self.unfollow(conversation_id)
        for order in getattr(self, "orders", {}).values():  # tracked, not yet followed
            order.close()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.librarian is not None and self.groups_joined:
            await desk_left(socket_id=self.channel_name)

    async def heard(self) -> None:
        """Refresh this socket's presence."""
        self.last_heard = time.monotonic()
        await desk_heard(
            librarian=self.librarian,
            socket_id=self.channel_name,
            available=self.available,
        )

    async def set_presence(self, status: str) -> None:
        self.available = status == "available"
        await self.heard()
        await self.send_presence()
        if self.available:
            await self.send_queue()
        else:
            await reroute_unstaffed()

    async def send_presence(self) -> None:
        timeout = settings.REFDESK_PRESENCE_TIMEOUT.total_seconds()
        await self.send_json(
            {
                "type": "presence",
                "status": "available" if self.available else "away",
                "heartbeat_seconds": max(1, min(10, int(timeout // 3))),
            }
        )

    async def send_queue(self) -> None:
        items = await queue_for_library(self.librarian.library)
        self.in_view = {item["id"] for item in items}
        await self.send_json({"type": "queue", "conversations": items})

    async def on_frame(self, content: dict) -> None:
        """Heartbeats share one lane and each conversation has its own. A
        presence change and a resume run here, holding back the events that
        follow them: offers wait for the queue they would land in, live
        messages for the history."""
        frame = protocol.parse_desk_frame(content)
        match frame:
            case protocol.Heartbeat():
                self.last_heard = time.monotonic()
                await self.in_lane(PRESENCE, content, self.heard)
            case protocol.SetPresence(status=status):
                await self.set_presence(status)
            case protocol.Resume(conversation=cid, after_seq=after_seq):
                await self.heard_soon(content)
                await self.resume(cid, after_seq)
            case _:
                await self.heard_soon(content)
                await self.in_lane(frame.conversation, content, lambda: self.act(frame))

    async def heard_soon(self, content: dict) -> None:
        """Any frame shows the librarian is there: refresh presence, at most once
        a second, beside the frame's own work."""
        if time.monotonic() - self.last_heard >= 1.0:
            self.last_heard = time.monotonic()
            await self.in_lane(PRESENCE, content, self.heard)

    async def resume(self, cid: UUID, after_seq: int) -> None:
        frames = await services.alibrarian_messages_after(
            conversation_id=cid, librarian=self.librarian, after_seq=after_seq
        )
        for message in frames:
            await self.send_json(message)
        last_seq = frames[-1]["seq"] if frames else after_seq
        if (order := self.orders.get(str(cid))) is not None:
            order.sent_up_to(last_seq)
        await self.send_json(
            {"type": "resumed", "conversation": str(cid), "last_seq": last_seq}
        )

    async def act(self, frame) -> None:
        match frame:
            case protocol.Accept(conversation=conversation_id):
                await services.aaccept_conversation(
                    conversation_id=conversation_id, librarian=self.librarian
                )
            case protocol.SendMessage(body=body, client_id=client_id, conversation=cid):
                message, stored = await services.apost_message(
                    conversation_id=cid,
                    sender=Sender.LIBRARIAN,
                    body=body,
                    client_id=client_id,
                    librarian=self.librarian,
                )
                if not stored:
                    await self.send_json(protocol.desk_message(message, cid))
            case protocol.Typing(conversation=cid):
                for group in await typing_target(
                    conversation_id=cid, librarian=self.librarian
                ):
                    await self.channel_layer.group_send(
                        group, {"type": "conversation.typing", "sender": "librarian"}
                    )
            case protocol.Transfer(conversation=cid, to_library=slug, note=note):
                await transfer_conversation(
                    conversation_id=cid,
                    librarian=self.librarian,
                    to_library=slug,
                    note=note,
                )
            case protocol.Close(
                conversation=cid, outcome=outcome, note=note, tags=tags
            ):
                await close_conversation(
                    conversation_id=cid,
                    librarian=self.librarian,
                    outcome=outcome,
                    note=note,
                    tags=tags,
                )

    # Layer events
    async def queue_offer(self, event):
        self.in_view.add(event["conversation"]["id"])
        await self.send_json({"type": "offer", "conversation": event["conversation"]})

    async def queue_withdraw(self, event):
        if event["conversation"] in self.in_view:
            self.in_view.discard(event["conversation"])
            await self.send_json(
                {
                    "type": "withdraw",
                    "conversation": event["conversation"],
                    "reason": event["reason"],
                }
            )

    async def desk_accepted(self, event):
        frame = event["frame"]
        conversation_id = frame["conversation"]
        order = self.track(frame)
        await self.send_json(frame)

        async def listen() -> None:
            await self.follow(conversation_id)
            # Messages stored between the accept and joining the conversation's
            # group were published before this socket listened: read them.
            await order.catch_up()

        # In the conversation's lane: the read waits its turn on the database
        # thread, and meanwhile this desk's other chats must go on arriving
        # (issue 7: awaited here, each accept stalled all of them, and a desk
        # carries dozens).
        await self.in_lane(UUID(conversation_id), frame, listen)

    async def follow(self, conversation_id: str) -> None:
        """Join the conversation's group: its messages are published there once."""
        if conversation_id not in self.followed:
            self.followed.add(conversation_id)
            await self.channel_layer.group_add(
                events.conversation_group(conversation_id), self.channel_name
            )

    async def unfollow(self, conversation_id: str) -> None:
        if (order := self.orders.pop(conversation_id, None)) is not None:
            order.close()
        if conversation_id in self.followed:
            self.followed.discard(conversation_id)
            await self.channel_layer.group_discard(
                events.conversation_group(conversation_id), self.channel_name
            )

    def track(self, accepted: dict) -> SeqOrder:
        """Deliver an accepted chat's messages in seq order from its history on."""
        conversation_id = accepted["conversation"]

        async def fetch(after_seq: int) -> list[dict]:
            return await services.alibrarian_messages_after(
                conversation_id=UUID(conversation_id),
                librarian=self.librarian,
                after_seq=after_seq,
            )

        last_seq = max((m["seq"] for m in accepted["history"]), default=0)
        if (previous := self.orders.get(conversation_id)) is not None:
            previous.close()
        order = SeqOrder(self.send_json, fetch, last_seq, gate=gap_reads())
        self.orders[conversation_id] = order
        return order

    async def conversation_message(self, event):
        order = self.orders.get(event["conversation"])
        if order is None:  # joined, history not sent yet: the history has it
            return
        await order.push(protocol.desk_message(event["message"], event["conversation"]))

    async def conversation_status(self, event):
        """The patron's status, on the conversation's group: not for desks."""

    async def conversation_typing(self, event):
        """The librarian's own typing, echoed by the conversation's group."""

    async def desk_typing(self, event):
        await self.send_json(
            {
                "type": "typing",
                "conversation": event["conversation"],
                "sender": event["sender"],
            }
        )

    async def desk_closed(self, event):
        await self.unfollow(event["conversation"])
        await self.send_json(
            {"type": "closed", "conversation": event["conversation"], "by": event["by"]}
        )

    async def desk_signed_off(self, event):
        self.available = False
        await self.heard()
        await self.send_presence()

    async def session_logout(self, event):
        await self.close(code=CLOSE_UNAUTHENTICATED)
