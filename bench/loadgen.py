"""The load generator: patrons, librarians and the two reference chats.

Everything here talks to 127.0.0.1 only, through `websockets` and a minimal
asyncio HTTP/1.1 client (`http_request`). Every wait has a timeout and every
loop a bound.

A *conversation* has two sides, ``p`` (patron) and ``l`` (librarian). Each
side sends messages at a fixed interval with a `client_id` and its send time
(`time.monotonic_ns`, one clock for the whole process) embedded in the body.
A message is *acknowledged* when its sender receives it back (refdesk: the
stored message with its `seq`; the references: the group echo). Checks, per
receiving side: every acknowledged message arrives exactly once, in order, with
no gaps (`check_conversation`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from websockets.asyncio.client import connect as ws_connect

HOST = "127.0.0.1"
PAD = "x" * 40
WS_OPTIONS = {"ping_interval": None, "max_size": 2**22, "open_timeout": 30}


def now_ns() -> int:
    return time.monotonic_ns()


# The wall clock minus the monotonic one: places refdesk's `sent_at` (stamped
# just before the message statement runs) on the load generator's timeline.
WALL_OFFSET_NS = time.time_ns() - time.monotonic_ns()


def stamp_ns(iso: str | None) -> int | None:
    """A server `sent_at` as a `now_ns()` reading (same machine, same clock)."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    return round(moment.timestamp() * 1e9) - WALL_OFFSET_NS


def body_for(client_id: str, t: int) -> str:
    return f"b:{client_id}:{t}:{PAD}"


def sent_at(body: str) -> int | None:
    if not body.startswith("b:"):
        return None
    try:
        return int(body.split(":", 3)[2])
    except (IndexError, ValueError):
        return None


# Minimal HTTP/1.1 client
# ----------------------------------------------------------------------
@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def json(self):
        return json.loads(self.body)


async def http_request(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 30.0,
) -> Response:
    """One request on a fresh connection to 127.0.0.1:port (`Connection: close`)."""

    async def go() -> Response:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            lines = [
                f"{method} {path} HTTP/1.1",
                f"Host: {HOST}:{port}",
                "Connection: close",
                f"Content-Length: {len(body)}",
            ]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            raw = await reader.read(-1)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parsed = []
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed.append((name.strip().lower(), value.strip()))
        if ("transfer-encoding", "chunked") in parsed:
            rest = _dechunk(rest)
        return Response(int(status_line.split()[1]), parsed, rest)

    return await asyncio.wait_for(go(), timeout)


def _dechunk(data: bytes) -> bytes:
    out, i = bytearray(), 0
    for _ in range(100_000):
        end = data.index(b"\r\n", i)
        size = int(data[i:end].split(b";")[0], 16)
        if size == 0:
            break
        out += data[end + 2 : end + 2 + size]
        i = end + 2 + size + 2
    return bytes(out)


def set_cookies(response: Response) -> dict[str, str]:
    cookies = {}
    for value in response.header_values("set-cookie"):
        name, _, rest = value.partition("=")
        cookies[name.strip()] = rest.split(";", 1)[0]
    return cookies


# Measurements of one phase
# ----------------------------------------------------------------------
@dataclass
class Recorder:
    """Latencies (ms) and counters for one phase of one setup."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # (send time in ns, ms) of every delivery: where in the phase the slow ones were
    timeline: list[tuple[int, float]] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    sent: int = 0
    window_sent: int = 0
    recording: bool = True

    def add(self, name: str, ms: float) -> None:
        if self.recording:
            self.latency[name].append(ms)

    def delivered(self, name: str, sent_ns: int, ms: float) -> None:
        if self.recording:
            self.latency[name].append(ms)
            self.timeline.append((sent_ns, ms))


class LoopLag:
    """How late the load generator's own event loop wakes up (its own noise)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        for _ in range(10_000_000):
            t = now_ns()
            await asyncio.sleep(0.02)
            self.samples.append((now_ns() - t) / 1e6 - 20.0)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def take(self) -> list[float]:
        samples, self.samples = self.samples, []
        return samples

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


# One conversation, whatever the setup
# ----------------------------------------------------------------------
@dataclass
class Conversation:
    """Both sides of one chat: what each sent, what came back, what arrived."""

    key: str
    recorder: Recorder | None = None
    pending: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"p": {}, "l": {}}
    )
    acked: dict[str, set] = field(default_factory=lambda: {"p": set(), "l": set()})
    logs: dict[str, list] = field(default_factory=lambda: {"p": [], "l": []})
    counter: dict[str, int] = field(default_factory=lambda: {"p": 0, "l": 0})
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failed: str = ""

    def received(
        self, side: str, key, sender: str, client_id: str, body: str, t: int
    ) -> None:
        """`side` got message `key` from `sender`: an echo (ack) or a delivery."""
        self.logs[side].append(key)
        if sender == side:
            if self.pending[side].pop(client_id, None) is not None:
                self.acked[side].add(key)
        elif self.recorder is not None:
            t0 = sent_at(body)
            if t0 is not None:
                self.recorder.delivered(
                    "p2l" if sender == "p" else "l2p", t0, (t - t0) / 1e6
                )

    def outstanding(self) -> int:
        """Messages sent but not yet acknowledged, or acknowledged but not delivered."""
        waiting = len(self.pending["p"]) + len(self.pending["l"])
        every = self.acked["p"] | self.acked["l"]
        for side in ("p", "l"):
            waiting += len(every - set(self.logs[side]))
        return waiting


EXAMPLES: list[str] = []  # a few reorders, for the JSON


def check_conversation(conv: Conversation, order_groups) -> Counter:
    """Losses, duplicates, reorders and gaps seen by each side of `conv`.

    `order_groups(log)` splits a side's log into the sequences that must each be
    1, 2, 3, ... in arrival order (refdesk: one per conversation, by `seq`;
    the references: one per sender, by the sender's counter).
    """
    found: Counter = Counter()
    every = conv.acked["p"] | conv.acked["l"]
    for side in ("p", "l"):
        log = conv.logs[side]
        found["duplicates"] += len(log) - len(set(log))
        found["losses"] += len(every - set(log))
        for numbers in order_groups(log):
            for a, b in zip(numbers, numbers[1:], strict=False):
                if b < a:
                    found["reorders"] += 1
                    if len(EXAMPLES) < 20:
                        EXAMPLES.append(f"{conv.key} side {side}: {b} after {a}")
            if numbers:
                found["gaps"] += len(set(range(1, max(numbers) + 1)) - set(numbers))
    found["unacknowledged"] += len(conv.pending["p"]) + len(conv.pending["l"])
    return found


async def exchange(
    convs: list[Conversation],
    send,
    *,
    interval: float,
    duration: float,
    recorder: Recorder,
    window: tuple[float, float] | None = None,
) -> None:
    """Each side of each conversation sends one message every `interval` seconds
    (random phase) for `duration` seconds: `send(conv, side, client_id, body)`."""
    start = time.monotonic() + 0.05
    end = start + duration

    async def side_loop(conv: Conversation, side: str) -> None:
        due = start + random.uniform(0, interval)
        for _ in range(1_000_000):
            if due >= end:
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            conv.counter[side] += 1
            n = conv.counter[side]
            client_id = f"{side}{n}-{random.getrandbits(32):08x}"
            t = now_ns()
            conv.pending[side][client_id] = t
            recorder.sent += 1
            try:
                await send(conv, side, client_id, body_for(client_id, t), n)
            except Exception as error:  # noqa: BLE001 - counted, the run goes on
                recorder.errors[f"send:{type(error).__name__}"] += 1
                conv.pending[side].pop(client_id, None)
            due += interval

    await asyncio.gather(*(side_loop(c, s) for c in convs for s in ("p", "l")))


async def drain(convs: list[Conversation], timeout: float) -> float:
    """Wait until nothing is in flight (or `timeout`); return the seconds waited."""
    t0 = time.monotonic()
    for _ in range(int(timeout / 0.05) + 1):
        if sum(c.outstanding() for c in convs) == 0:
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def paced(n: int, rate: float, make, *, limit: int = 64) -> list:
    """Run `make(i)` for i in range(n), started at `rate` per second, at most
    `limit` at once; return results (exceptions included)."""
    gate = asyncio.Semaphore(limit)
    t0 = time.monotonic()

    async def one(i: int):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        async with gate:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)


# The references: plain Channels chat and bare relay
# ----------------------------------------------------------------------
class RelaySetup:
    """Two sockets per conversation on `/…/pair/<id>`; frames echo to both."""

    def __init__(self, name: str, port: int, path: str) -> None:
        self.name = name
        self.port = port
        self.path = path
        self.sockets: dict[str, dict] = {}
        self.readers: list[asyncio.Task] = []
        self.serial = 0

    def uri(self, pair: str) -> str:
        return f"ws://{HOST}:{self.port}{self.path.format(pair=pair)}"

    async def open(self, n: int, recorder: Recorder, *, rate: float) -> list:
        async def make(i: int) -> Conversation:
            self.serial += 1
            conv = Conversation(key=f"{self.name}-{self.serial}", recorder=recorder)
            sockets = {}
            for side in ("p", "l"):
                ws = await ws_connect(self.uri(conv.key), **WS_OPTIONS)
                sockets[side] = ws
                self.readers.append(asyncio.create_task(self._read(conv, side, ws)))
            self.sockets[conv.key] = sockets
            return conv

        results = await paced(n, rate, make)
        convs = [r for r in results if isinstance(r, Conversation)]
        for r in results:
            if not isinstance(r, Conversation):
                recorder.errors[f"open:{type(r).__name__}"] += 1
        return convs

    async def _read(self, conv: Conversation, side: str, ws) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                t = now_ns()
                frame = json.loads(raw)
                conv.received(
                    side,
                    (frame["s"], frame["n"]),
                    frame["s"],
                    frame["client_id"],
                    frame["body"],
                    t,
                )

    async def send(
        self, conv: Conversation, side: str, client_id: str, body: str, n: int
    ):
        frame = {"s": side, "n": n, "client_id": client_id, "body": body}
        await self.sockets[conv.key][side].send(json.dumps(frame))

    @staticmethod
    def order_groups(log: list) -> list[list[int]]:
        return [[n for s, n in log if s == sender] for sender in ("p", "l")]

    async def close(self, convs: list[Conversation]) -> None:
        for conv in convs:
            for ws in self.sockets.pop(conv.key, {}).values():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)
        for task in self.readers:
            task.cancel()
        self.readers = [t for t in self.readers if not t.done()]

    def socket_count(self, convs: list[Conversation]) -> int:
        return 2 * len(convs)


# refdesk: patrons over the HTTP API and patron sockets, librarians at desks
# ----------------------------------------------------------------------
class Desk:
    """One librarian: logged in over HTTP, one desk socket, its chats."""

    def __init__(self, setup: RefdeskSetup, username: str, library: str) -> None:
        self.setup = setup
        self.username = username
        self.library = library
        self.ws = None
        self.cookie = ""
        self.load = 0
        self.heartbeat_seconds = 10
        self.tasks: list[asyncio.Task] = []

    async def login(self, password: str) -> None:
        port = self.setup.port
        page = await http_request(port, "GET", "/accounts/login/")
        cookies = set_cookies(page)
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        if page.status != 200 or not match or "csrftoken" not in cookies:
            raise RuntimeError(f"login page for {self.username}: HTTP {page.status}")
        form = urllib.parse.urlencode(
            {
                "username": self.username,
                "password": password,
                "csrfmiddlewaretoken": match.group(1).decode(),
            }
        ).encode()
        origin = f"http://{HOST}:{port}"
        answer = await http_request(
            port,
            "POST",
            "/accounts/login/",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={cookies['csrftoken']}",
                "Origin": origin,
                "Referer": f"{origin}/accounts/login/",
            },
            body=form,
        )
        session = set_cookies(answer).get("sessionid")
        if answer.status != 302 or not session:
            raise RuntimeError(f"login of {self.username}: HTTP {answer.status}")
        self.cookie = f"sessionid={session}"

    async def connect(self) -> None:
        origin = f"http://{HOST}:{self.setup.port}"
        self.ws = await ws_connect(
            f"ws://{HOST}:{self.setup.ws_port}/ws/desk/",
            origin=origin,
            additional_headers={"Cookie": self.cookie},
            **WS_OPTIONS,
        )
        self.tasks = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._heartbeat()),
        ]

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def _heartbeat(self) -> None:
        with contextlib.suppress(Exception):
            for _ in range(1_000_000):
                await asyncio.sleep(max(1, self.heartbeat_seconds - 1))
                await self.send({"type": "heartbeat"})

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                t = now_ns()
                self.setup.on_desk_frame(self, json.loads(raw), t)
        except Exception as error:  # noqa: BLE001
            self.setup.desk_errors[f"desk_read:{type(error).__name__}"] += 1
        if self.setup.running:
            self.setup.desk_errors["desk_closed"] += 1

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)


@dataclass
class ChatState:
    """What the desks know about one conversation id (offers can beat the HTTP answer)."""

    first_offer: int = 0
    accept_sent: int = 0
    accepted_at: int = 0
    desk: Desk | None = None
    conv: Conversation | None = None
    early: list = field(default_factory=list)
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class RefdeskSetup:
    name = "refdesk"

    def __init__(
        self,
        port: int,
        *,
        ws_port: int | None = None,
        librarians: dict[str, list[str]],
        postal_codes: dict[str, list[str]],
        quiet: dict,
        password: str,
        out_of_area_share: float = 0.2,
    ) -> None:
        self.port = port  # HTTP: login, the JSON API
        # WebSockets: the Procfile's `sockets` process when split, else the same
        self.ws_port = ws_port or port
        self.password = password
        self.postal_codes = postal_codes
        self.quiet = quiet
        self.out_of_area_share = out_of_area_share
        self.desks = [
            Desk(self, username, slug)
            for slug, names in librarians.items()
            for username in names
        ]
        self.by_library: dict[str, list[Desk]] = defaultdict(list)
        for desk in self.desks:
            self.by_library[desk.library].append(desk)
        self.quiet_desk = Desk(self, quiet["librarian"], quiet["slug"])
        self.chats: dict[str, ChatState] = defaultdict(ChatState)
        self.patrons: dict[str, object] = {}
        self.readers: dict[str, asyncio.Task] = {}
        self.recorder: Recorder | None = None
        self.desk_errors: Counter = Counter()
        self.probes: dict[str, dict] = {}
        self.running = False
        self.serial = 0
        self.libraries = sorted(librarians)

    # Desks
    async def start_desks(self) -> None:
        everyone = [*self.desks, self.quiet_desk]
        results = await paced(
            len(everyone), 20, lambda i: everyone[i].login(self.password), limit=4
        )
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            raise RuntimeError(f"librarian login failed: {failures[0]}")
        for desk in everyone:
            await desk.connect()
        self.running = True

    async def stop_desks(self) -> None:
        self.running = False
        for desk in [*self.desks, self.quiet_desk]:
            await desk.close()

    def socket_count(self, convs: list[Conversation]) -> int:
        return len(convs)

    def on_desk_frame(self, desk: Desk, frame: dict, t: int) -> None:
        kind = frame.get("type")
        if kind == "message":
            state = self.chats.get(frame["conversation"])
            if state is None or state.conv is None:
                self.chats[frame["conversation"]].early.append(("l", frame, t))
                return
            self._deliver(state.conv, "l", frame, t)
        elif kind == "offer":
            self._on_offer(desk, frame["conversation"], t)
        elif kind == "accepted":
            state = self.chats[frame["conversation"]]
            state.accepted_at = t
            history = [
                ("l", {**m, "conversation": frame["conversation"]}, t)
                for m in frame.get("history", [])
            ]
            if state.conv is None:
                state.early.extend(history)
            else:
                for side, message, at in history:
                    self._deliver(state.conv, side, message, at, history=True)
            state.accepted.set()
        elif kind == "presence":
            desk.heartbeat_seconds = frame.get("heartbeat_seconds", 10)
        elif kind == "closed":
            self.chats[frame["conversation"]].closed.set()
        elif kind == "error":
            if self.recorder is not None:
                self.recorder.errors[f"desk_error:{frame.get('code')}"] += 1
            else:
                self.desk_errors[f"desk_error:{frame.get('code')}"] += 1

    def _on_offer(self, desk: Desk, item: dict, t: int) -> None:
        cid = item["id"]
        if item.get("origin_library") == self.quiet["slug"]:
            probe = self.probes.get(cid)
            if probe is None:
                self.probes[cid] = probe = {"offers": []}
            probe["offers"].append(
                (time.time(), item.get("step"), item.get("escalate_at"), desk.library)
            )
            return
        state = self.chats[cid]
        if not state.first_offer:
            state.first_offer = t
        if state.desk is not None:
            return
        candidates = self.by_library.get(desk.library) or [desk]
        chosen = min(candidates, key=lambda d: (d.load, d.username))
        chosen.load += 1
        state.desk = chosen
        state.accept_sent = now_ns()
        asyncio.create_task(
            self._send_quietly(chosen, {"type": "accept", "conversation": cid})
        )

    async def _send_quietly(self, desk: Desk, frame: dict) -> None:
        try:
            await desk.send(frame)
        except Exception as error:  # noqa: BLE001
            self.desk_errors[f"desk_send:{type(error).__name__}"] += 1

    def _deliver(
        self, conv: Conversation, side: str, frame: dict, t: int, history: bool = False
    ) -> None:
        sender = {"patron": "p", "librarian": "l"}.get(frame.get("sender"), "s")
        if not history and sender not in (side, "s") and conv.recorder is not None:
            self._split(conv.recorder, frame, t)
        conv.received(
            side,
            frame["seq"],
            sender,
            frame.get("client_id") or "",
            frame.get("body") or "",
            t,
        )

    @staticmethod
    def _split(recorder: Recorder, frame: dict, t: int) -> None:
        """Split a delivery at the server's stamp: sender to the statement
        (`inbound`: the socket, its process's loop, the lane) and from there
        to the other side (`outbound`: statement, publish, Redis, the
        receiving process, its socket)."""
        sent = sent_at(frame.get("body") or "")
        stamp = stamp_ns(frame.get("sent_at"))
        if sent is not None and stamp is not None:
            recorder.add("inbound", (stamp - sent) / 1e6)
            recorder.add("outbound", (t - stamp) / 1e6)

    # Patrons
    async def open(
        self, n: int, recorder: Recorder, *, rate: float, tag: str = "_burst"
    ) -> list:
        """Start `n` chats at `rate` per second; each is accepted by a desk.

        Start and accept latencies go to `start_offer{tag}`, `accept{tag}` and
        `start_http{tag}`: `_burst` for the bulk opening of a phase, `""` for the
        trickle of chats started during the message exchange."""
        if tag:
            self.recorder = recorder

        async def make(i: int) -> Conversation:
            self.serial += 1
            library = self.libraries[self.serial % len(self.libraries)]
            if random.random() < self.out_of_area_share:
                postal = "99999"  # outside every demo service area
            else:
                postal = random.choice(self.postal_codes[library])
            body = json.dumps(
                {
                    "question": f"Bench question {self.serial}: opening hours?",
                    "name": f"Patron {self.serial}",
                    "postal_code": postal,
                }
            ).encode()
            t_post = now_ns()
            answer = await http_request(
                self.port,
                "POST",
                f"/api/v1/libraries/{library}/conversations",
                headers={"Content-Type": "application/json"},
                body=body,
            )
            if answer.status != 201:
                raise RuntimeError(f"start chat: HTTP {answer.status}")
            started = answer.json()
            recorder.add(f"start_http{tag}", (now_ns() - t_post) / 1e6)
            cid = started["id"]
            conv = Conversation(key=cid, recorder=recorder)
            conv.acked["p"].add(1)  # the question, stored by the 201
            state = self.chats[cid]
            state.conv = conv
            for side, frame, at in state.early:
                self._deliver(conv, side, frame, at)
            state.early.clear()
            ws = await ws_connect(
                f"ws://{HOST}:{self.ws_port}{started['websocket']}", **WS_OPTIONS
            )
            self.patrons[cid] = ws
            active = asyncio.Event()
            self.readers[cid] = asyncio.create_task(self._read_patron(conv, ws, active))
            try:
                await asyncio.wait_for(state.accepted.wait(), 30)
                await asyncio.wait_for(active.wait(), 30)
            except TimeoutError:
                raise RuntimeError("chat not accepted within 30 s") from None
            if state.first_offer:
                recorder.add(f"start_offer{tag}", (state.first_offer - t_post) / 1e6)
            else:
                recorder.errors["no_offer_seen"] += 1
            if state.accept_sent and state.accepted_at:
                recorder.add(
                    f"accept{tag}", (state.accepted_at - state.accept_sent) / 1e6
                )
            conv.ready.set()
            return conv

        results = await paced(n, rate, make)
        convs = [r for r in results if isinstance(r, Conversation)]
        for r in results:
            if not isinstance(r, Conversation):
                recorder.errors[f"open:{str(r)[:60]}"] += 1
        return convs

    async def _read_patron(self, conv: Conversation, ws, active: asyncio.Event) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                t = now_ns()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "message":
                    self._deliver(conv, "p", frame, t)
                elif kind == "status" and frame.get("status") == "active":
                    active.set()
                elif kind == "error" and conv.recorder is not None:
                    conv.recorder.errors[f"patron_error:{frame.get('code')}"] += 1

    async def send(
        self, conv: Conversation, side: str, client_id: str, body: str, n: int
    ):
        if side == "p":
            frame = {"type": "message", "body": body, "client_id": client_id}
            await self.patrons[conv.key].send(json.dumps(frame))
        else:
            desk = self.chats[conv.key].desk
            frame = {
                "type": "message",
                "conversation": conv.key,
                "body": body,
                "client_id": client_id,
            }
            await desk.send(frame)

    @staticmethod
    def order_groups(log: list) -> list[list[int]]:
        return [list(log)]

    async def close(self, convs: list[Conversation]) -> None:
        """Librarians close their chats (outcome answered); patrons hang up."""
        for conv in convs:
            state = self.chats[conv.key]
            if state.desk is not None:
                await self._send_quietly(
                    state.desk,
                    {"type": "close", "conversation": conv.key, "outcome": "answered"},
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(self.chats[c.key].closed.wait() for c in convs)), 15
            )
        for conv in convs:
            state = self.chats.pop(conv.key, None)
            if state and state.desk is not None:
                state.desk.load -= 1
            ws = self.patrons.pop(conv.key, None)
            if ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)
            task = self.readers.pop(conv.key, None)
            if task is not None:
                task.cancel()

    # Overflow probe: a chat at the quiet library, whose librarian never answers
    async def probe(self, *, timeout: float) -> dict:
        body = json.dumps({"question": "Bench overflow probe"}).encode()
        answer = await http_request(
            self.port,
            "POST",
            f"/api/v1/libraries/{self.quiet['slug']}/conversations",
            headers={"Content-Type": "application/json"},
            body=body,
        )
        if answer.status != 201:
            return {"error": f"HTTP {answer.status}"}
        started = answer.json()
        cid = started["id"]
        result: dict = {"id": cid}
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.02) + 1):
            offers = self.probes.get(cid, {}).get("offers", [])
            local = [o for o in offers if o[1] == "local"]
            overflow = [o for o in offers if o[1] == "overflow"]
            if local and overflow:
                escalate_at = _parse_iso(local[0][2])
                first = min(o[0] for o in overflow)
                result.update(
                    deadline=local[0][2],
                    lateness_s=first - escalate_at,
                    offered_to=sorted({o[3] for o in overflow}),
                )
                break
            if time.monotonic() > deadline:
                result["error"] = (
                    "no overflow offer before the timeout"
                    if local
                    else ("no local offer")
                )
                break
            await asyncio.sleep(0.02)
        # The patron leaves, so the probe chat does not linger in the queues.
        with contextlib.suppress(Exception):
            ws = await ws_connect(
                f"ws://{HOST}:{self.ws_port}{started['websocket']}", **WS_OPTIONS
            )
            await ws.send(json.dumps({"type": "close"}))
            await asyncio.sleep(0.2)
            await asyncio.wait_for(ws.close(), 5)
        self.probes.pop(cid, None)
        return result


def _parse_iso(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
