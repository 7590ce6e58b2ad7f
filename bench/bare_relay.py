"""The floor: a bare `websockets` relay, no Django, no channel layer.

Sockets connecting to `/pair/<id>` form a pair; every text frame received is
sent to every socket of its pair (the sender included, like the Channels
tutorial's group), in arrival order. One process, loopback only.

    python -m bench.bare_relay --port 8765
"""

import argparse
import asyncio
import contextlib
import signal
from collections import defaultdict

from websockets.asyncio.server import serve

PAIRS: dict[str, set] = defaultdict(set)


async def relay(socket) -> None:
    pair = socket.request.path.rstrip("/").rsplit("/", 1)[-1]
    members = PAIRS[pair]
    members.add(socket)
    try:
        async for frame in socket:
            for member in list(members):
                with contextlib.suppress(Exception):
                    await member.send(frame)
    finally:
        members.discard(socket)
        if not members:
            PAIRS.pop(pair, None)


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(relay, host, port, max_size=2**20):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the bench relay listens on loopback only")
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.host, args.port))
    else:
        uvloop.run(main(args.host, args.port))
