"""Benchmark refdesk against a plain Channels chat and a bare relay, side by side.

    python -m bench.run [--full] [--out bench/results]

Starts everything itself (bench/stack.py), plays patrons and librarians against
refdesk and the same load against the two references (bench/loadgen.py) in
interleaved phases, checks every message, and writes
`<out>/<timestamp>.{json,md,png}` plus `<out>/latest.md`. Exits 1 when any
acknowledged message was lost, duplicated or reordered, or a phase failed.
Traffic goes to 127.0.0.1 only; every phase and wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import flushprobe, loadgen, report
from bench.stack import (
    ROOT,
    Stack,
    all_cpu,
    cpu_seconds,
    machine_cpu,
    rss_bytes,
    runq_wait_seconds,
)

# ~12% apart from 600 to 2000 msg/s, where refdesk's and plain's ceilings have
# been: steps of 25-30% there made the ratio of the two ceilings jump between
# 50% and 80% with the step each one happened to stop at.
# fmt: off
FULL_RAMP_RATES = [
    100, 200, 400, 600, 700, 800, 900, 1000, 1120, 1250, 1400, 1600, 1800, 2000,
    2500, 3200,
]
# fmt: on
PROFILES = {
    "default": {
        "levels": [50, 200],
        "rounds": 1,
        "steady": 8.0,
        "interval": 4.0,
        "start_rate": 40.0,
        "trickle_rate": 2.0,
        "ramp_pairs": 40,
        "ramp_rates": [200, 400, 600, 800, 1000, 1200],
        "ramp_step": 3.0,
        "librarians": 4,
        "warmup": 10,
        "max_seconds": 480,
    },
    "full": {
        "levels": [50, 200, 1000],
        "rounds": 2,
        "steady": 20.0,
        "interval": 4.0,
        "start_rate": 40.0,
        "trickle_rate": 2.0,
        "ramp_pairs": 100,
        "ramp_rates": FULL_RAMP_RATES,
        "ramp_step": 6.0,
        "librarians": 10,
        "warmup": 20,
        "max_seconds": 3000,
    },
}
REFERENCES = ("plain", "bare")


def is_refdesk(name: str) -> bool:
    """`refdesk` is the tree under test; `refdesk@NAME` a variant (--variant)."""
    return name.split("@")[0] == "refdesk"


def costs(name: str) -> dict[str, list[str]]:
    """Process groups whose CPU a setup is charged with ("app" = its ASGI server)."""
    if is_refdesk(name):
        app = [f"{name}-web", f"{name}-sockets"]  # sockets: when split
        return {"app": app, "total": [*app, f"{name}-celery", "postgres", "redis"]}
    if name == "plain":
        return {"app": ["plain-web"], "total": ["plain-web", "redis"]}
    return {"app": ["bare-relay"], "total": ["bare-relay"]}


P99_LIMIT_MS = 100.0
NOISY_FOREIGN_CORES = 0.3


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[index], 3)


def timeline(samples: list[tuple[int, float]], slices: int = 10) -> list[dict]:
    """Delivery latency by when the message was sent: `slices` equal slices of
    the phase, so a tail can be placed (the phase's start, a burst, all along)."""
    if not samples:
        return []
    t0 = min(t for t, _ in samples)
    width = max(1, max(t for t, _ in samples) - t0 + 1) / slices
    buckets: list[list[float]] = [[] for _ in range(slices)]
    for t, ms in samples:
        buckets[min(slices - 1, int((t - t0) / width))].append(ms)
    return [
        {
            "from_s": round(i * width / 1e9, 1),
            "n": len(bucket),
            "p50": pct(bucket, 50),
            "p99": pct(bucket, 99),
            "max": round(max(bucket), 3) if bucket else None,
        }
        for i, bucket in enumerate(buckets)
    ]


def dist(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": round(max(values), 3) if values else None,
    }


# Costs of a window: CPU, memory, queries, Redis commands
# ----------------------------------------------------------------------
def _utc(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


class Meter:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.own_pg = stack.pg.get("mode") == "own"

    def _snapshot(self, db: str) -> dict:
        pids = self.stack.server_pids()
        snap = {
            "t": time.monotonic(),
            "wall": time.time(),
            "machine": machine_cpu(),
            "all": all_cpu(),
            "ours": {p for group in pids.values() for p in group} | {os.getpid()},
            "cpu": {name: cpu_seconds(p) for name, p in pids.items()},
            "loadgen": cpu_seconds([os.getpid()]),
            "wait": {name: runq_wait_seconds(p) for name, p in pids.items()},
            "loadgen_wait": runq_wait_seconds([os.getpid()]),
            "rss": {name: rss_bytes(p) for name, p in pids.items()},
        }
        if self.stack.redis.get("mode") == "own":
            stats = self.stack.redis_client().info("commandstats")
            snap["redis"] = {
                k.removeprefix("cmdstat_"): v["calls"]
                for k, v in stats.items()
                if k.removeprefix("cmdstat_") not in ("info", "ping", "config")
            }
            # read events: one per pipeline or lone command a client sent
            snap["redis_reads"] = self.stack.redis_client().info("stats")[
                "total_reads_processed"
            ]
        # Commits show group commit: fewer than one per message under load.
        rows = self.stack.query(
            "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, "
            "tup_inserted, tup_updated FROM pg_stat_database "
            f"WHERE datname = '{db}'"
        )
        snap["pgdb"] = list(rows[0]) if rows else None
        if self.own_pg:
            # WAL flushes (a commit waits for its own): count and time, ms
            wal = self.stack.query(
                "SELECT wal_sync, wal_sync_time, wal_write, wal_write_time "
                "FROM pg_stat_wal"
            )
            snap["pgwal"] = [float(v) for v in wal[0]] if wal else None
        return snap

    async def begin(self, setup: str = "refdesk") -> dict:
        db = self.stack.dbs.get(setup, self.stack.dbs["refdesk"])

        def go():
            if self.own_pg:
                self.stack.query("SELECT pg_stat_statements_reset()")
            snap = self._snapshot(db)
            snap["db"] = db
            return snap

        return await asyncio.to_thread(go)

    async def end(self, before: dict) -> dict:
        def go():
            after = self._snapshot(before["db"])
            statements = None
            if self.own_pg:
                statements = self.stack.query(
                    "SELECT s.query, s.calls, s.total_exec_time FROM pg_stat_statements s "
                    "JOIN pg_database d ON d.oid = s.dbid "
                    f"WHERE d.datname = '{before['db']}' ORDER BY s.calls DESC"
                )
            return after, statements

        after, statements = await asyncio.to_thread(go)
        seconds = after["t"] - before["t"]
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        ncpu = os.cpu_count() or 1
        cpu = {
            name: round(after["cpu"][name] - before["cpu"].get(name, 0.0), 3)
            for name in after["cpu"]
        }
        cpu["loadgen"] = round(after["loadgen"] - before["loadgen"], 3)
        # runnable but not running: what a busy 2-core box adds to each hop
        waited = {
            name: round(after["wait"][name] - before["wait"].get(name, 0.0), 3)
            for name in after["wait"]
        }
        waited["loadgen"] = round(after["loadgen_wait"] - before["loadgen_wait"], 3)
        irq = after["machine"][2] - before["machine"][2]
        steal = after["machine"][3] - before["machine"][3]
        machine_busy_cores = busy / total * ncpu if total else 0.0
        irq_cores = irq / total * ncpu if total else 0.0
        steal_cores = steal / total * ncpu if total else 0.0
        ours = sum(cpu.values()) / seconds if seconds else 0.0
        window = {
            "seconds": round(seconds, 3),
            # UTC, to place the PostgreSQL log's events (`postgres_events`)
            "from_utc": _utc(before["wall"]),
            "to_utc": _utc(after["wall"]),
            "cpu_s": cpu,
            "runq_wait_s": waited,
            "machine_busy_pct": round(100 * busy / total, 1) if total else None,
            "irq_cores": round(irq_cores, 2),
            # the hypervisor's: this VM's CPUs had work and ran someone else's
            "steal_cores": round(steal_cores, 2),
            # busy time of processes that are not the bench's (interrupts and
            # steal excluded)
            "foreign_cores": round(
                max(0.0, machine_busy_cores - irq_cores - steal_cores - ours), 2
            ),
            "rss": after["rss"],
        }
        others: Counter = Counter()
        for pid, (comm, used) in after["all"].items():
            if pid not in after["ours"] and pid in before["all"]:
                others[comm] += used - before["all"][pid][1]
        window["foreign_top"] = {
            k: round(v / seconds, 2)
            for k, v in others.most_common(4)
            if v > 0 and seconds
        }
        if "redis" in after:
            calls = {
                k: after["redis"][k] - before["redis"].get(k, 0) for k in after["redis"]
            }
            window["redis_calls"] = {k: v for k, v in sorted(calls.items()) if v}
            window["redis_reads"] = after["redis_reads"] - before["redis_reads"]
        if statements is not None:
            window["pg_statements"] = [  # the 12 most frequent
                {"query": q[:160], "calls": c, "ms": round(ms, 1)}
                for q, c, ms in statements[:12]
            ]
            window["pg_calls"] = sum(c for _, c, _ in statements)
        if before.get("pgwal") and after.get("pgwal"):
            syncs, sync_ms, writes, write_ms = (
                a - b for a, b in zip(after["pgwal"], before["pgwal"], strict=True)
            )
            window["pg_wal"] = {
                "syncs": int(syncs),
                "sync_ms": round(sync_ms, 1),
                "writes": int(writes),
                "write_ms": round(write_ms, 1),
            }
        if before.get("pgdb") and after.get("pgdb"):
            names = ["xact_commit", "xact_rollback", "tup_returned", "tup_fetched",
                     "tup_inserted", "tup_updated"]  # fmt: skip
            window["pg_database"] = {
                n: a - b
                for n, a, b in zip(names, after["pgdb"], before["pgdb"], strict=True)
            }
        return window


# The bench
# ----------------------------------------------------------------------
class Bench:
    def __init__(self, stack: Stack, profile: dict, args) -> None:
        self.stack = stack
        self.profile = profile
        self.args = args
        self.meter = Meter(stack)
        self.lag = loadgen.LoopLag()
        self.flushes: flushprobe.FlushProbe | None = None  # --flush-probe
        self.phases: list[dict] = []
        self.probes: list[dict] = []
        self.baseline: dict = {}
        self.setups = {
            name: loadgen.RefdeskSetup(
                stack.ports[name],
                ws_port=stack.ws_ports[name],
                librarians=seed["librarians"],
                postal_codes=seed["postal_codes"],
                quiet=seed["quiet"],
                password=stack.password,
            )
            for name, seed in stack.seeds.items()
        }
        self.setups["plain"] = loadgen.RelaySetup(
            "plain", stack.ports["plain"], "/ws/pair/{pair}/"
        )
        self.setups["bare"] = loadgen.RelaySetup(
            "bare", stack.ports["bare"], "/pair/{pair}"
        )
        self.order = list(self.setups)

    def say(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)

    async def run(self) -> None:
        self.lag.start()
        for name in self.order:
            if is_refdesk(name):
                await self.setups[name].start_desks()
                count = len(self.setups[name].desks)
                self.say(f"{name}: {count} librarians at their desks (+1 quiet desk)")
        await asyncio.sleep(1.0)
        before = await self.meter.begin()
        await asyncio.sleep(3.0)
        self.baseline = await self.meter.end(before)
        self.lag.take()
        self.say("idle baseline measured; warming up")
        for name in self.order:
            await self.phase(name, self.profile["warmup"], label="warmup", steady=2.0)
        for level in self.profile["levels"]:
            for round_ in range(1, self.profile["rounds"] + 1):
                order = self.order if round_ % 2 else self.order[::-1]
                for name in order:
                    await self.phase(name, level, label="level", round_=round_)
        await self.ramp()
        for name in self.order:
            if is_refdesk(name):
                await self.setups[name].stop_desks()
        await self.lag.stop()

    async def phase(
        self,
        name: str,
        n: int,
        *,
        label: str,
        round_: int = 1,
        steady: float | None = None,
    ) -> dict:
        setup = self.setups[name]
        steady = steady or self.profile["steady"]
        recorder = loadgen.Recorder()
        charged = costs(name)
        rss_before = await asyncio.to_thread(self._rss, charged["app"])
        t_open = time.monotonic()
        rate = self.profile["start_rate"] * (1 if is_refdesk(name) else 4)
        convs = await setup.open(n, recorder, rate=rate)
        open_s = time.monotonic() - t_open
        rss_open = await asyncio.to_thread(self._rss, charged["app"])
        self.lag.take()
        probes = []
        before = await self.meter.begin(name)
        recorder.sent = 0
        exchanging = asyncio.create_task(
            loadgen.exchange(
                convs,
                setup.send,
                interval=self.profile["interval"],
                duration=steady,
                recorder=recorder,
            )
        )
        trickle = None
        if is_refdesk(name) and label == "level" and self.profile["trickle_rate"] > 0:
            probes = [asyncio.create_task(self._probes(name, steady))]
            trickle = asyncio.create_task(self._trickle(setup, recorder, steady))
        await exchanging
        trickled = await trickle if trickle else []
        window = await self.meter.end(before)
        sent = recorder.sent
        lag = self.lag.take()
        drain_s = await loadgen.drain(convs, 10.0)
        integrity = Counter()
        for conv in convs:
            integrity.update(loadgen.check_conversation(conv, setup.order_groups))
        for task in probes:
            self.probes.extend({**found, "setup": name} for found in await task)
        await setup.close(convs + trickled)
        result = self._summarise(
            name, label, n, round_, recorder, convs, window, sent, integrity,
            rss_before=rss_before, rss_open=rss_open, sockets=setup.socket_count(convs),
            open_s=open_s, drain_s=drain_s, lag=lag,
        )  # fmt: skip
        if is_refdesk(name):
            result["errors"].update({k: v for k, v in setup.desk_errors.items()})
            setup.desk_errors.clear()
        self.phases.append(result)
        lat = result["latency"]["delivery"]
        self.say(
            f"{label} {name:7} n={n:<4} msgs={sent:<5} delivery p50={lat['p50']} "
            f"p99={lat['p99']} ms  machine {window['machine_busy_pct']}% "
            f"waited {result['runq_wait_ms_per_msg']['total']} ms/msg "
            f"(foreign {window['foreign_cores']}, steal {window['steal_cores']} cores)  "
            f"{dict(integrity) or 'clean'}"
        )
        if result["delivery_timeline"]:
            self.say(
                "  p99 by tenth of the phase: "
                + " ".join(str(s["p99"]) for s in result["delivery_timeline"])
            )
        return result

    async def _trickle(self, setup, recorder, steady: float) -> list:
        """Chats started one by one at `trickle_rate` during the exchange: the
        start→offer and accept figures at a steady arrival rate, under load."""
        rate = self.profile["trickle_rate"]
        convs = await setup.open(
            max(1, int(steady * rate) - 1), recorder, rate=rate, tag=""
        )
        for conv in convs:
            conv.recorder = None  # they exchange nothing; keep them out of delivery
        return convs

    async def _probes(self, name: str, steady: float) -> list[dict]:
        refdesk = self.setups[name]
        timeout = (
            self.stack.quiet_wait + int(self.stack.env["REFDESK_SWEEP_SECONDS"]) + 8
        )
        tasks = []
        every = max(2.0, steady / 3)
        for i in range(max(1, int(steady // every))):
            tasks.append(asyncio.create_task(refdesk.probe(timeout=timeout)))
            await asyncio.sleep(every)
            del i
        found = await asyncio.gather(*tasks, return_exceptions=True)
        return [
            r if isinstance(r, dict) else {"error": f"{type(r).__name__}: {r}"}
            for r in found
        ]

    def _rss(self, names: list[str]) -> int:
        pids = self.stack.server_pids()
        return sum(rss_bytes(pids.get(n, [])) for n in names)

    def _summarise(
        self, name, label, n, round_, recorder, convs, window, sent, integrity, *,
        rss_before, rss_open, sockets, open_s, drain_s, lag, rate=None,
    ) -> dict:  # fmt: skip
        lat = recorder.latency
        seconds = window["seconds"]
        charged = costs(name)
        app_cpu = sum(window["cpu_s"].get(g, 0.0) for g in charged["app"])
        total_cpu = sum(window["cpu_s"].get(g, 0.0) for g in charged["total"])
        app_wait = sum(window["runq_wait_s"].get(g, 0.0) for g in charged["app"])
        total_wait = sum(window["runq_wait_s"].get(g, 0.0) for g in charged["total"])
        delivered = len(lat["p2l"]) + len(lat["l2p"])
        result = {
            "setup": name,
            "kind": label,
            "conversations": n,
            "opened": len(convs),
            "round": round_,
            "offered_rate": rate,
            "messages_sent": sent,
            "messages_delivered": delivered,
            "msg_per_s": round(sent / seconds, 1) if seconds else None,
            "delivered_per_s": round(delivered / seconds, 1) if seconds else None,
            "latency": {
                "delivery": dist(lat["p2l"] + lat["l2p"]),
                "p2l": dist(lat["p2l"]),
                "l2p": dist(lat["l2p"]),
                "inbound": dist(lat["inbound"]),
                "outbound": dist(lat["outbound"]),
                "start_offer": dist(lat["start_offer"]),
                "start_http": dist(lat["start_http"]),
                "accept": dist(lat["accept"]),
                "start_offer_burst": dist(lat["start_offer_burst"]),
                "start_http_burst": dist(lat["start_http_burst"]),
                "accept_burst": dist(lat["accept_burst"]),
            },
            "delivery_timeline": timeline(recorder.timeline),
            "cpu_ms_per_msg": {
                "app": round(1000 * app_cpu / sent, 3) if sent else None,
                "total": round(1000 * total_cpu / sent, 3) if sent else None,
            },
            "runq_wait_ms_per_msg": {
                "app": round(1000 * app_wait / sent, 3) if sent else None,
                "total": round(1000 * total_wait / sent, 3) if sent else None,
            },
            "rss_per_socket_kib": (
                round((rss_open - rss_before) / sockets / 1024, 1) if sockets else None
            ),
            "rss_app_mib": round(rss_open / 2**20, 1),
            "sockets": sockets,
            "open_s": round(open_s, 2),
            "drain_s": round(drain_s, 2),
            "loadgen_lag_ms": dist(lag),
            "loadgen_cpu_cores": round(window["cpu_s"]["loadgen"] / seconds, 2)
            if seconds
            else None,
            "window": window,
            "integrity": {
                k: integrity.get(k, 0)
                for k in ("losses", "duplicates", "reorders", "gaps", "unacknowledged")
            },
            "errors": dict(recorder.errors),
            # raw samples, pooled over rounds by summarise(); not written out
            "_samples": {
                "delivery": lat["p2l"] + lat["l2p"],
                "p2l": list(lat["p2l"]),
                "l2p": list(lat["l2p"]),
                "start_offer": list(lat["start_offer"]),
                "accept": list(lat["accept"]),
            },
        }
        base_s = self.baseline.get("seconds") or 0
        if "redis_calls" in window and sent:
            raw = sum(window["redis_calls"].values())
            idle = (
                sum(self.baseline.get("redis_calls", {}).values()) / base_s * seconds
                if base_s
                else 0
            )
            result["redis_cmds_per_msg"] = {
                "raw": round(raw / sent, 2),
                "net_of_idle": round(max(0.0, raw - idle) / sent, 2),
                "top": dict(Counter(window["redis_calls"]).most_common(8)),
            }
        if "redis_reads" in window and sent:
            result["redis_reads_per_msg"] = round(window["redis_reads"] / sent, 2)
        if "pg_calls" in window and sent:
            raw = window["pg_calls"]
            idle = self.baseline.get("pg_calls", 0) / base_s * seconds if base_s else 0
            result["db_queries_per_msg"] = {
                "raw": round(raw / sent, 2),
                "net_of_idle": round(max(0.0, raw - idle) / sent, 2),
            }
        if "pg_database" in window and sent:
            result["db_xacts_per_msg"] = round(
                window["pg_database"]["xact_commit"] / sent, 2
            )
        sent_wall = [
            ((t + loadgen.WALL_OFFSET_NS) / 1e9, ms) for t, ms in recorder.timeline
        ]
        flushes = None
        if self.flushes is not None and sent_wall:
            flushes = self.flushes.between(
                min(t for t, _ in sent_wall) - 1.0,
                max(t + ms / 1000 for t, ms in sent_wall) + 1.0,
            )
            result["flush_probe"] = dist([ms for _, ms in flushes])
        result["slowest"] = flushprobe.slowest(sent_wall, flushes)
        result["noisy"] = (
            window["foreign_cores"] + window["steal_cores"] > NOISY_FOREIGN_CORES
        )
        return result

    async def ramp(self) -> None:
        if not self.profile["ramp_rates"]:  # --ramp-rates 0
            return
        pairs = self.profile["ramp_pairs"]
        opened = {}
        for name in self.order:
            recorder = loadgen.Recorder()
            rate = self.profile["start_rate"] if is_refdesk(name) else 200
            opened[name] = await self.setups[name].open(pairs, recorder, rate=rate)
            opened[name + ":errors"] = dict(recorder.errors)
        self.say(f"ramp: {pairs} conversations per setup open")
        active = list(self.order)
        for step, rate in enumerate(self.profile["ramp_rates"]):
            order = (
                active[step % len(active) :] + active[: step % len(active)]
                if active
                else []
            )
            for name in order:
                ok = await self._ramp_step(name, opened[name], rate)
                if (
                    not ok
                ):  # one p99 spike on a shared machine is not a ceiling: retry once
                    ok = await self._ramp_step(name, opened[name], rate, retry=True)
                if not ok:
                    active.remove(name)
            if not active:
                break
        for name in self.order:
            integrity = Counter()
            for conv in opened[name]:
                integrity.update(
                    loadgen.check_conversation(conv, self.setups[name].order_groups)
                )
            self.phases.append(
                {
                    "setup": name,
                    "kind": "ramp-integrity",
                    "conversations": pairs,
                    "opened": len(opened[name]),
                    "integrity": {
                        k: integrity.get(k, 0)
                        for k in (
                            "losses",
                            "duplicates",
                            "reorders",
                            "gaps",
                            "unacknowledged",
                        )
                    },
                    "errors": opened[name + ":errors"],
                }
            )
            await self.setups[name].close(opened[name])

    async def _ramp_step(
        self, name: str, convs: list, rate: float, retry: bool = False
    ) -> bool:
        setup = self.setups[name]
        recorder = loadgen.Recorder()
        for conv in convs:
            conv.recorder = recorder
        if is_refdesk(name):
            setup.recorder = recorder
        interval = 2 * len(convs) / rate
        self.lag.take()
        before = await self.meter.begin(name)
        await loadgen.exchange(
            convs, setup.send, interval=interval, duration=self.profile["ramp_step"],
            recorder=recorder,
        )  # fmt: skip
        window = await self.meter.end(before)
        sent = recorder.sent
        lag = self.lag.take()
        drain_s = await loadgen.drain(convs, 8.0)
        outstanding = sum(c.outstanding() for c in convs)
        result = self._summarise(
            name, "ramp", len(convs), 1, recorder, convs, window, sent, Counter(),
            rss_before=0, rss_open=0, sockets=0, open_s=0, drain_s=drain_s, lag=lag,
            rate=rate,
        )  # fmt: skip
        del result["integrity"]
        result["undelivered_after_drain"] = outstanding
        p99 = result["latency"]["delivery"]["p99"]
        achieved = result["delivered_per_s"] or 0
        result["sustained"] = bool(
            p99 is not None
            and p99 <= P99_LIMIT_MS
            and achieved >= 0.9 * rate
            and outstanding == 0
        )
        result["loadgen_bound"] = (result["loadgen_cpu_cores"] or 0) > 0.9
        result["retry"] = retry
        self.phases.append(result)
        self.say(
            f"ramp {name:7}{' (retry)' if retry else ''} offered {rate:>5}/s delivered {achieved:>7}/s p99={p99} ms "
            f"{'ok' if result['sustained'] else 'FAIL'}  loadgen {result['loadgen_cpu_cores']} cores "
            f"machine {window['machine_busy_pct']}%"
        )
        return result["sustained"]


# Summary, targets, files
# ----------------------------------------------------------------------
def _p99_by_round(phases: list[dict], level: int, ref: str) -> list[float | None]:
    """refdesk's delivery p99 over the reference's, round by round.

    A round's phases run next to each other, so each ratio compares the two on
    about the same host; the pooled ratio mixes rounds the host may have run
    at different speeds."""
    p99 = {
        (p["setup"], p["round"]): p["latency"]["delivery"]["p99"]
        for p in phases
        if p["kind"] == "level" and p["conversations"] == level
    }
    rounds = sorted({r for (setup, r) in p99 if setup == "refdesk"})
    return [_ratio(p99[("refdesk", r)], p99.get((ref, r))) for r in rounds]


def summarise(
    phases: list[dict], probes: list[dict], sweep_s: float, levels: list[int]
) -> dict:
    names = list(dict.fromkeys(p["setup"] for p in phases))
    summary: dict = {"setups": names, "levels": {}, "ramp": {}, "overflow": {}}
    for level in levels:
        row = {}
        for name in names:
            runs = [
                p
                for p in phases
                if p["kind"] == "level"
                and p["setup"] == name
                and p["conversations"] == level
            ]
            if not runs:
                continue

            # Percentiles over the pooled samples are not stored; take the median of the
            # per-round figures and the worst p99.
            def med(path, runs=runs):
                values = [_get(r, path) for r in runs]
                values = [v for v in values if v is not None]
                return round(statistics.median(values), 3) if values else None

            def worst(path, runs=runs):
                values = [_get(r, path) for r in runs]
                values = [v for v in values if v is not None]
                return max(values) if values else None

            def pooled(name, q, runs=runs):
                return pct(
                    [x for r in runs for x in r.get("_samples", {}).get(name, [])], q
                )

            sent = sum(r["messages_sent"] for r in runs)
            row[name] = {
                "rounds": len(runs),
                "messages": sent,
                "msg_per_s": med("msg_per_s"),
                # percentiles of the samples pooled over the rounds
                "delivery_p50": pooled("delivery", 50),
                "delivery_p95": pooled("delivery", 95),
                "delivery_p99": pooled("delivery", 99),
                "delivery_p99_worst_round": worst("latency.delivery.p99"),
                "p2l_p50": pooled("p2l", 50),
                "p2l_p99": pooled("p2l", 99),
                "l2p_p50": pooled("l2p", 50),
                "l2p_p99": pooled("l2p", 99),
                "start_offer_p50": pooled("start_offer", 50),
                "start_offer_p99": pooled("start_offer", 99),
                "accept_p50": pooled("accept", 50),
                "accept_p99": pooled("accept", 99),
                "burst_start_offer_p50": med("latency.start_offer_burst.p50"),
                "burst_start_offer_p99": worst("latency.start_offer_burst.p99"),
                "burst_accept_p99": worst("latency.accept_burst.p99"),
                "burst_open_s": med("open_s"),
                "cpu_ms_per_msg_app": med("cpu_ms_per_msg.app"),
                "cpu_ms_per_msg_total": med("cpu_ms_per_msg.total"),
                "runq_wait_ms_per_msg_total": med("runq_wait_ms_per_msg.total"),
                "db_queries_per_msg": med("db_queries_per_msg.net_of_idle"),
                "db_xacts_per_msg": med("db_xacts_per_msg"),
                "redis_cmds_per_msg": med("redis_cmds_per_msg.net_of_idle"),
                "redis_reads_per_msg": med("redis_reads_per_msg"),
                "rss_per_socket_kib": runs[0]["rss_per_socket_kib"],
                "machine_busy_pct": med("window.machine_busy_pct"),
                "foreign_cores": worst("window.foreign_cores"),
                "steal_cores": worst("window.steal_cores"),
                "noisy": any(r["noisy"] for r in runs),
                "opened": min(r["opened"] for r in runs),
                "errors": sum(sum(r["errors"].values()) for r in runs),
                "integrity": dict(
                    sum((Counter(r["integrity"]) for r in runs), Counter())
                ),
            }
        keys = ("delivery_p50", "delivery_p95", "delivery_p99",
                "cpu_ms_per_msg_total", "cpu_ms_per_msg_app", "runq_wait_ms_per_msg_total",
                "rss_per_socket_kib")  # fmt: skip
        for ref in REFERENCES:
            if "refdesk" in row and ref in row:
                row[f"ratio_vs_{ref}"] = {
                    k: _ratio(row["refdesk"].get(k), row[ref].get(k)) for k in keys
                }
                row[f"p99_by_round_vs_{ref}"] = _p99_by_round(phases, level, ref)
        for name in names:
            if "@" in name and name in row and "refdesk" in row:
                row[f"ratio_{name}_vs_refdesk"] = {
                    k: _ratio(row[name].get(k), row["refdesk"].get(k)) for k in keys
                }
        summary["levels"][str(level)] = row
    for name in names:
        steps = [p for p in phases if p["kind"] == "ramp" and p["setup"] == name]
        passed = [p for p in steps if p["sustained"]]
        summary["ramp"][name] = {
            "sustained_msg_per_s": max(
                (p["delivered_per_s"] for p in passed), default=0
            ),
            "highest_offered_passed": max(
                (p["offered_rate"] for p in passed), default=0
            ),
            "first_failed": next(
                (
                    rate
                    for rate in dict.fromkeys(p["offered_rate"] for p in steps)
                    if not any(
                        p["sustained"] for p in steps if p["offered_rate"] == rate
                    )
                ),
                None,
            ),
            "loadgen_bound": any(p["loadgen_bound"] for p in steps),
            "steps": [
                {
                    "offered": p["offered_rate"],
                    "delivered_per_s": p["delivered_per_s"],
                    "p50": p["latency"]["delivery"]["p50"],
                    "p99": p["latency"]["delivery"]["p99"],
                    "ok": p["sustained"],
                    "machine_busy_pct": p["window"]["machine_busy_pct"],
                    "loadgen_cores": p["loadgen_cpu_cores"],
                    "retry": p.get("retry", False),
                }
                for p in steps
            ],
        }
    for ref in REFERENCES:
        mine = summary["ramp"]["refdesk"]["sustained_msg_per_s"]
        theirs = summary["ramp"][ref]["sustained_msg_per_s"]
        summary["ramp"][f"ratio_vs_{ref}"] = _ratio(mine, theirs)
    mine = [p for p in probes if p.get("setup") == "refdesk"]
    late = [p["lateness_s"] for p in mine if "lateness_s" in p]
    summary["overflow"] = {
        "probes": len(mine),
        "measured": len(late),
        "failed": [p.get("error") for p in mine if "error" in p],
        "lateness_s_min": round(min(late), 3) if late else None,
        "lateness_s_p50": pct(late, 50),
        "lateness_s_max": round(max(late), 3) if late else None,
        "bound_s": sweep_s + 1,
    }
    return summary


def _get(data, path: str):
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return round(a / b, 2)


def _by_round(ratios: list[float | None] | None) -> str:
    """ " (by round: 2.0x, 5.0x)" when there was more than one round."""
    if not ratios or len(ratios) < 2:
        return ""
    shown = (f"{r}x" if r is not None else "–" for r in ratios)
    return " (by round: " + ", ".join(shown) + ")"


def targets(summary: dict, phases: list[dict], full: bool) -> list[dict]:
    found = []
    levels = summary["levels"]
    r200 = levels.get("200", {}).get("refdesk")
    if "1000" in levels and levels["1000"].get("refdesk"):
        r1000 = levels["1000"]["refdesk"]
        clean = not any(r1000["integrity"].values())
        found.append(_target(
            "1000 concurrent conversations held",
            r1000["opened"] == 1000 and clean,
            f"{r1000['opened']}/1000 open and exchanging, nothing lost "
            f"({_integrity_text(r1000['integrity'])}); but delivery p50 {r1000['delivery_p50']} ms, "
            f"p99 {r1000['delivery_p99']} ms at {r1000['msg_per_s']} msg/s offered",
        ))  # fmt: skip
    else:
        found.append({"target": "1000 concurrent conversations held", "met": None,
                      "figures": "not run (run with --full)"})  # fmt: skip
    if r200:
        found.append(_target(
            "delivery p99 <= 100 ms and p50 <= 10 ms at 200 conversations, committed first",
            r200["delivery_p99"] is not None and r200["delivery_p99"] <= 100
            and r200["delivery_p50"] is not None and r200["delivery_p50"] <= 10,
            f"p50 {r200['delivery_p50']} ms, p99 {r200['delivery_p99']} ms",
        ))  # fmt: skip
    ratios = [
        (level, row["ratio_vs_plain"]["delivery_p99"])
        for level, row in levels.items()
        if row.get("ratio_vs_plain", {}).get("delivery_p99") is not None
    ]
    if ratios:
        found.append(_target(
            "delivery p99 within 2x of the plain Channels chat at the same load",
            all(r <= 2 for _, r in ratios),
            ", ".join(
                f"{lv} conversations: {r}x"
                + _by_round(levels[lv].get("p99_by_round_vs_plain"))
                for lv, r in ratios
            ),
        ))  # fmt: skip
    ramp = summary["ramp"]
    if ramp.get("ratio_vs_plain") is not None:
        found.append(_target(
            "sustained throughput >= 60% of the plain Channels chat",
            ramp["ratio_vs_plain"] >= 0.6,
            f"refdesk {ramp['refdesk']['sustained_msg_per_s']} msg/s vs plain "
            f"{ramp['plain']['sustained_msg_per_s']} msg/s ({round(100 * ramp['ratio_vs_plain'])}%)"
            + (
                "; plain never failed, so the ratio is an upper bound"
                if ramp["plain"]["first_failed"] is None
                else ""
            ),
        ))  # fmt: skip
    bad = Counter()
    for p in phases:
        for k in ("losses", "duplicates", "reorders", "gaps"):
            bad[k] += p.get("integrity", {}).get(k, 0)
    found.append(_target(
        "zero lost, duplicated or reordered acknowledged messages",
        not any(bad.values()),
        ", ".join(f"{k} {v}" for k, v in bad.items()) or "clean",
    ))  # fmt: skip
    offers = [
        row["refdesk"]["start_offer_p99"]
        for row in levels.values()
        if row.get("refdesk")
    ]
    offers = [o for o in offers if o is not None]
    if offers:
        found.append(_target(
            "offer reaches a desk within 50 ms (p99) of the chat starting",
            max(offers) <= 50,
            ", ".join(f"{lv} conversations: p99 {row['refdesk']['start_offer_p99']} ms"
                      for lv, row in levels.items() if row.get("refdesk")),
        ))  # fmt: skip
    of = summary["overflow"]
    if of["measured"]:
        found.append(_target(
            "overflow fires no earlier than its deadline, no later than deadline + sweep + 1 s",
            of["lateness_s_min"] >= 0 and of["lateness_s_max"] <= of["bound_s"] and not of["failed"],
            f"{of['measured']} probes: lateness {of['lateness_s_min']}..{of['lateness_s_max']} s "
            f"(p50 {of['lateness_s_p50']} s; bound {of['bound_s']} s)"
            + (f"; {len(of['failed'])} probes failed" if of["failed"] else ""),
        ))  # fmt: skip
    return found


def _integrity_text(found: dict) -> str:
    return (
        ", ".join(f"{k} {v}" for k, v in found.items() if k != "unacknowledged")
        or "clean"
    )


def _target(name: str, met: bool, figures: str) -> dict:
    return {"target": name, "met": bool(met), "figures": figures}


def machine_info() -> dict:
    info = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="50, 200 and 1000 conversations, longer phases, 2 rounds",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="uvicorn worker processes serving the WebSockets (W)",
    )
    parser.add_argument(
        "--http-workers",
        type=int,
        default=1,
        help="uvicorn workers of refdesk's separate HTTP process (H); "
        "0: the W workers serve HTTP too",
    )
    parser.add_argument(
        "--shared-services",
        action="store_true",
        help="use PostgreSQL on :5432 and Redis on :6379 instead of throwaway ones",
    )
    parser.add_argument(
        "--levels", help="comma-separated conversation counts (overrides the profile)"
    )
    parser.add_argument(
        "--steady", type=float, help="seconds of message exchange per phase"
    )
    parser.add_argument(
        "--interval", type=float, help="seconds between messages of one side"
    )
    parser.add_argument("--rounds", type=int)
    parser.add_argument(
        "--trickle-rate",
        type=float,
        help="chats/s started during refdesk phases (0: none)",
    )
    parser.add_argument(
        "--ramp-rates",
        help="comma-separated msg/s steps of the throughput ramp; 0 skips it",
    )
    parser.add_argument(
        "--label", default="", help="a note stored with the results (e.g. a variant)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=PATH[:W[/H]]",
        help="also run the refdesk source tree at PATH (with W socket workers and "
        "H HTTP workers, 0: not split) as setup refdesk@NAME, interleaved with "
        "the others (A/B a patch or a layout)",
    )
    parser.add_argument(
        "--flush-probe",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="time an 8 kB synced write beside PostgreSQL's WAL every SECONDS "
        "(e.g. 0.05) and report it per phase and per slowest message "
        "(bench/flushprobe.py); off by default",
    )
    args = parser.parse_args(argv)  # fmt: skip

    profile = dict(PROFILES["full" if args.full else "default"])
    if args.levels:
        profile["levels"] = [int(x) for x in args.levels.split(",")]
    if args.steady:
        profile["steady"] = args.steady
    if args.interval:
        profile["interval"] = args.interval
    if args.rounds:
        profile["rounds"] = args.rounds
    if args.trickle_rate is not None:
        profile["trickle_rate"] = args.trickle_rate
    if args.ramp_rates is not None:
        profile["ramp_rates"] = [
            int(x) for x in args.ramp_rates.split(",") if int(x) > 0
        ]

    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    stack = Stack(
        workers=args.workers,
        http_workers=args.http_workers,
        shared=args.shared_services,
        librarians_per_library=profile["librarians"],
        variants=[_variant(v) for v in args.variant],
    )

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    # Ctrl-C stops the run even when started from a shell that ignores SIGINT
    # in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result: dict = {}
    exit_code = 0
    bench = None
    try:
        print(f"[bench] starting the stack in {stack.workdir}", flush=True)
        stack.start()
        print(f"[bench] stack up: {stack.timings}", flush=True)
        bench = Bench(stack, profile, args)
        if args.flush_probe > 0:
            if stack.pg_disk_dir is None:
                print("[bench] --flush-probe needs the bench's own PostgreSQL; off")
            else:
                probe = flushprobe.FlushProbe(stack.pg_disk_dir, args.flush_probe)
                probe.start()
                bench.flushes = probe
        runner = _runner()
        runner(asyncio.wait_for(bench.run(), profile["max_seconds"]))
    except KeyboardInterrupt:
        print("[bench] interrupted; stopping everything", flush=True)
        exit_code = 130
    except Exception as error:  # noqa: BLE001 - reported, processes still stopped
        print(f"[bench] FAILED: {type(error).__name__}: {error}", flush=True)
        exit_code = 2
        result["failure"] = f"{type(error).__name__}: {error}"
    finally:
        if bench is not None and bench.flushes is not None:
            bench.flushes.stop()
        log_problems = stack.log_problems() if stack.procs else {}
        pg_events = stack.postgres_events()
        tails = stack.logs_tail() if stack.procs else {}
        versions = {}
        with contextlib.suppress(Exception):
            versions = stack.versions()
        stack.stop()
        shutil.rmtree(stack.workdir, ignore_errors=True)

    if bench is None or not bench.phases:
        print(
            json.dumps({"failure": result.get("failure"), "logs": tails}, indent=1)[
                -4000:
            ]
        )
        return exit_code or 2
    sweep_s = float(stack.env.get("REFDESK_SWEEP_SECONDS", 5))
    summary = summarise(bench.phases, bench.probes, sweep_s, profile["levels"])
    checked = targets(summary, bench.phases, args.full)
    result.update(
        {
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "label": args.label,
            "profile": "full" if args.full else "default",
            "parameters": profile,
            "machine": machine_info(),
            "versions": versions,
            "settings": {
                "uvicorn": "uvicorn <app> " + " ".join(stack.uvicorn_flags),
                "workers": stack.workers,
                "http_workers": stack.http_workers,
                "variants": {
                    name: {
                        "tree": str(path),
                        "workers": stack.build_workers[name][0],
                        "http_workers": stack.build_workers[name][1],
                    }
                    for name, path, _, _ in stack.variants
                },
                "celery": f"celery -A refdesk worker --beat --concurrency {stack.celery_concurrency}",
                "channel_layer": "refdesk: the one its tree's settings name "
                "(refdesk.layers.RedisPubSubChannelLayer from commit b669250 on); plain: "
                + os.environ.get(
                    "BENCH_PLAIN_LAYER", "channels_redis.pubsub.RedisPubSubChannelLayer"
                ),
                "db_pool": "per process: Django's psycopg pool (min 2, max 20) and the message path's asyncio pool (refdesk/asyncdb.py, max REFDESK_DB_ASYNC_POOL_MAX)",
                "postgresql": stack.pg.get("settings"),
                "redis": f"{stack.redis.get('mode')} redis-server, no persistence",
                "env": {k: v for k, v in stack.env.items() if k.startswith("REFDESK_")},
                "librarians": {k: len(v) for k, v in stack.seed["librarians"].items()},
                "timings": stack.timings,
                "loadgen": "one asyncio process (uvloop), websockets client, permessage-deflate on",
            },
            "baseline_idle": bench.baseline,
            "summary": summary,
            "targets": checked,
            "overflow_probes": bench.probes,
            "phases": bench.phases,
            "server_log_problems": log_problems,
            "postgres_events": pg_events,
            "reorder_examples": loadgen.EXAMPLES,
        }
    )
    failed_integrity = any(
        any(
            p.get("integrity", {}).get(k)
            for k in ("losses", "duplicates", "reorders", "gaps")
        )
        for p in bench.phases
    )
    result["ok"] = exit_code == 0 and not failed_integrity
    for phase in bench.phases:
        phase.pop("_samples", None)
    (out / f"{stamp}.json").write_text(json.dumps(result, indent=1, default=str))
    markdown = report.markdown(result, png_name=f"{stamp}.png")
    (out / f"{stamp}.md").write_text(markdown)
    shutil.copyfile(out / f"{stamp}.md", out / "latest.md")
    with contextlib.suppress(Exception):
        report.plot(result, out / f"{stamp}.png")
    print(markdown)
    print(f"[bench] wrote {out / stamp}.json, .md, .png and latest.md", flush=True)
    if failed_integrity:
        print("[bench] FAILED: messages were lost, duplicated or reordered", flush=True)
        return 1
    return exit_code


def _variant(spec: str) -> tuple[str, Path, int | None, int | None]:
    name, _, where = spec.partition("=")
    path, _, counts = where.partition(":")
    workers, _, http = counts.partition("/")
    return (
        f"refdesk@{name}",
        Path(path),
        int(workers) if workers else None,
        int(http) if http else None,
    )


def _runner():
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


if __name__ == "__main__":
    sys.exit(main())
