"""How long a small synced write takes on the disk PostgreSQL writes its WAL to,
sampled all through a run (`python -m bench.run --flush-probe 0.05`).

Every refdesk message waits for PostgreSQL's commit, which waits for a WAL
flush; the references touch no disk. A delivery stall that only refdesk shows
could be the disk holding up flushes, or something else. The probe writes 8 kB
to a file of its own beside the WAL and `fdatasync`s it every `interval`
seconds, in a thread, and keeps (wall time, ms) of each. Each phase then reports
the probe's figures, and each of its slowest messages the longest probe flush
while it was under way (`slowest`): a stall that coincides with slow flushes
points at the disk; one with fast flushes does not.

It adds 1/interval synced writes a second to the disk in every phase (20 at the
0.05 s it is meant for, against hundreds of WAL flushes under load), so it is
off unless asked for.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

BLOCK = b"\0" * 8192


class FlushProbe:
    def __init__(self, directory: Path, interval: float) -> None:
        self.path = Path(directory) / "bench-flush-probe"
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (wall time at start, ms)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="bench-flush-probe", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while not self._stop.wait(self.interval):
                wall = time.time()
                t = time.perf_counter()
                os.pwrite(fd, BLOCK, 0)
                os.fdatasync(fd)
                self.samples.append((wall, (time.perf_counter() - t) * 1000))
        finally:
            os.close(fd)

    def between(self, start: float, end: float) -> list[tuple[float, float]]:
        """The samples started between two wall times."""
        return [s for s in self.samples if start <= s[0] <= end]


def slowest(
    deliveries: list[tuple[float, float]],
    flushes: list[tuple[float, float]] | None,
    count: int = 5,
) -> list[dict]:
    """The `count` slowest deliveries (wall time sent, ms), each with the
    longest probe flush that started while it was under way (from 50 ms before
    it was sent, as a flush already running then still holds it up)."""
    found = []
    for sent, ms in sorted(deliveries, key=lambda d: d[1], reverse=True)[:count]:
        entry = {"sent_utc": _utc(sent), "ms": round(ms, 3)}
        if flushes is not None:
            during = [f for t, f in flushes if sent - 0.05 <= t <= sent + ms / 1000]
            entry["flush_max_ms"] = round(max(during), 3) if during else None
        found.append(entry)
    return found


def _utc(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")
