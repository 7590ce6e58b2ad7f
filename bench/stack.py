"""Start and stop the stack under test, and read what it costs.

PostgreSQL and Redis are the harness's own throwaway servers by default
(loopback, free ports, removed at the end), so that `pg_stat_statements` and
`INFO commandstats` count only the bench; `--shared-services` uses the servers
on 127.0.0.1:5432 and :6379 instead, in the database `refdesk_bench` and the
Redis prefix `bench-<pid>`. Then refdesk as its Procfile runs it (`web`, uvicorn
with H workers for HTTP; `sockets`, uvicorn with W workers for the WebSockets; a
Celery worker with beat), the plain Channels reference on the same uvicorn
command (W workers) and channel layer, and the bare relay.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
DB_NAME = "refdesk_bench"


# PostgreSQL log lines worth placing against the phases: what can hold a
# commit or a statement up without showing in the statement's own time.
POSTGRES_EVENTS = (
    "checkpoint starting",
    "checkpoint complete",
    "automatic vacuum",
    "automatic analyze",
    "still waiting for",
)
_LOG_LINE_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def postgres_events(log: str, limit: int = 200) -> list[dict]:
    """Checkpoints, autovacuum runs and lock waits from a PostgreSQL server log
    (default `log_line_prefix`: each entry starts with its timestamp; its
    detail lines follow, indented)."""
    entries: list[str] = []
    for line in log.splitlines():
        if _LOG_LINE_START.match(line):
            entries.append(line)
        elif entries and line[:1].isspace():
            entries[-1] += " " + line.strip()
    found = []
    for entry in entries:
        if any(event in entry for event in POSTGRES_EVENTS):
            at, _, text = entry.partition(" [")
            found.append({"at": at, "event": text.partition("] ")[2][:400]})
    return found[-limit:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    for _ in range(int(timeout / interval) + 2):
        try:
            if check():
                return
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last = error
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s ({last})")


# /proc readings
# ----------------------------------------------------------------------
def machine_cpu(stat: str | None = None) -> tuple[int, int, int, int]:
    """(busy, total, irq, steal) jiffies over all cores, from /proc/stat.

    `irq` (hard and soft interrupts: loopback TCP is mostly softirq) is busy
    time that no process is charged with. `steal` is time the hypervisor gave
    this VM's CPUs to someone else while they had work: counted as busy,
    charged to no process here."""
    if stat is None:
        stat = Path("/proc/stat").read_text()
    fields = stat.split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values), values[5] + values[6], values[7]


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def all_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (command, CPU seconds) for every process on the machine."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            found[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return found


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields:
                kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def tree(pid: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    kids = kids if kids is not None else children_map()
    found, todo = [], [pid]
    for _ in range(10_000):
        if not todo:
            break
        p = todo.pop()
        found.append(p)
        todo.extend(kids.get(p, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK


def runq_wait_seconds(pids: list[int]) -> float:
    """Time the processes' threads were ready to run but waited for a CPU: the
    second field of /proc/<pid>/task/<tid>/schedstat (ns). Threads that ended
    between two readings drop out of the sum, as their CPU does from
    `cpu_seconds`."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text()
                total += int(stat.split()[1])
    return total / 1e9


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


# Processes
# ----------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self, kids=None) -> list[int]:
        return tree(self.pid, kids)

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


@dataclass
class Stack:
    """Everything the bench starts; `stop()` ends all of it (also on errors)."""

    workers: int = 2
    # uvicorn workers of a separate HTTP process (pages, login, the JSON API),
    # as the Procfile's `web` beside `sockets`; 0 serves HTTP and WebSockets
    # from the same W workers
    http_workers: int = 1
    shared: bool = False
    celery_concurrency: int = 2
    librarians_per_library: int = 4
    quiet_wait: int = 2
    password: str = "refdesk-demo"
    # (name, source tree, socket workers or None, HTTP workers or None) of
    # extra refdesk builds to interleave with the main one
    variants: list[tuple[str, Path, int | None, int | None]] = field(
        default_factory=list
    )
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="refdesk-bench-"))
    )
    procs: list[Proc] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)  # HTTP (and the references' sockets)
    ws_ports: dict = field(default_factory=dict)  # refdesk builds' WebSockets
    pg: dict = field(default_factory=dict)
    redis: dict = field(default_factory=dict)
    seed: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=dict)
    dbs: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    _pg_as: list[str] = field(default_factory=list)
    _pg_dir: Path | None = None
    _pg_bin: Path | None = None

    # Services
    def start(self) -> None:
        t0 = time.monotonic()
        if self.shared:
            self._use_shared_services()
        else:
            self._start_postgres()
            self._start_redis()
        self.timings["services_s"] = round(time.monotonic() - t0, 2)
        prefix = f"bench-{os.getpid()}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "DATABASE_URL": self.pg["url"],
            "REDIS_URL": self.redis["url"],
            "REFDESK_REDIS_PREFIX": prefix,
            "DJANGO_SETTINGS_MODULE": "refdesk.settings",
            "DJANGO_SECRET_KEY": f"bench-not-secret-{os.getpid()}",
            "REFDESK_LOG_LEVEL": "WARNING",
            # Chats of the load never escalate, and their (no-op once accepted)
            # timers never fire during a run: at 300 s the timers of one phase's
            # burst of chats fired inside a later phase, another setup's, and
            # were charged to it. The probe library has its own short local
            # wait (bench/seed.py).
            "REFDESK_LOCAL_WAIT_SECONDS": "7200",
            "REFDESK_OVERFLOW_WAIT_SECONDS": "120",
            "REFDESK_SWEEP_SECONDS": os.environ.get("REFDESK_SWEEP_SECONDS", "5"),
            "REFDESK_CHAT_RATE_PER_MINUTE": "1000000",
            "DEMO_PASSWORD": self.password,
            "PYTHONUNBUFFERED": "1",
        }
        self.builds = {"refdesk": (ROOT, self.env)}
        self.build_workers = {"refdesk": (self.workers, self.http_workers)}
        for i, (name, tree_root, workers, http) in enumerate(self.variants, start=1):
            self.build_workers[name] = (
                workers or self.workers,
                self.http_workers if http is None else http,
            )
            db = f"{DB_NAME}_v{i}"
            self._sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            self._sql(f'CREATE DATABASE "{db}"')
            env = {
                **self.env,
                "DATABASE_URL": self.pg["url"].rsplit("/", 1)[0] + "/" + db,
                "REFDESK_REDIS_PREFIX": f"{prefix}-v{i}",
                "PYTHONPATH": str(ROOT),  # bench.seed, if the tree has no bench/
            }
            self.builds[name] = (Path(tree_root).resolve(), env)
        t0 = time.monotonic()
        for name, (tree_root, env) in self.builds.items():
            self.dbs[name] = env["DATABASE_URL"].rsplit("/", 1)[1]
            self._python("manage.py", "migrate", "--noinput", cwd=tree_root, env=env)
            self._python(
                "manage.py", "seed_demo", "--always-open", cwd=tree_root, env=env
            )
            out = self._python(
                "-m",
                "bench.seed",
                "--per-library",
                str(self.librarians_per_library),
                "--quiet-wait",
                str(self.quiet_wait),
                cwd=tree_root,
                env=env,
            )
            self.seeds[name] = json.loads(out.strip().splitlines()[-1])
        self.seed = self.seeds["refdesk"]
        self.timings["migrate_seed_s"] = round(time.monotonic() - t0, 2)

        t0 = time.monotonic()
        self.ports = {name: free_port() for name in [*self.builds, "plain", "bare"]}
        self.ws_ports = {
            name: free_port() if self.build_workers[name][1] else self.ports[name]
            for name in self.builds
        }
        uvicorn_flags = [
            "--host", "127.0.0.1",
            "--log-level", "warning",
            "--no-access-log",
            "--no-proxy-headers",
            "--ws", "auto",
        ]  # fmt: skip
        self.uvicorn_flags = ["--workers", str(self.workers), *uvicorn_flags]
        for name, (tree_root, env) in self.builds.items():
            workers, http_workers = self.build_workers[name]
            # Split (the Procfile's `web` + `sockets`, a proxy sending /ws/ to
            # the latter): the load generator posts to `web` and opens sockets
            # on `sockets`. Not split: one server does both.
            servers = (
                [("web", self.ports[name], http_workers),
                 ("sockets", self.ws_ports[name], workers)]
                if http_workers
                else [("web", self.ports[name], workers)]
            )  # fmt: skip
            for role, port, count in servers:
                self._spawn(
                    f"{name}-{role}",
                    [str(VENV_BIN / "uvicorn"), "refdesk.asgi:application",
                     "--port", str(port), "--workers", str(count), *uvicorn_flags],
                    env=env, cwd=tree_root,
                )  # fmt: skip
            self._spawn(
                f"{name}-celery",
                [str(VENV_BIN / "celery"), "-A", "refdesk", "worker", "--beat",
                 "--loglevel", "warning", "--concurrency", str(self.celery_concurrency),
                 "--schedule", str(self.workdir / f"{name}-celerybeat-schedule")],
                env=env, cwd=tree_root,
            )  # fmt: skip
        self._spawn(
            "plain-web",
            [str(VENV_BIN / "uvicorn"), "bench.plain_channels:application",
             "--port", str(self.ports["plain"]), *self.uvicorn_flags],
            env={"DJANGO_SETTINGS_MODULE": "bench.plain_settings"},
        )  # fmt: skip
        self._spawn(
            "bare-relay",
            [
                sys.executable,
                "-m",
                "bench.bare_relay",
                "--port",
                str(self.ports["bare"]),
            ],
        )
        for port in {*self.ports.values(), *self.ws_ports.values()}:
            wait_until(lambda p=port: self._listening(p), 60, f"a server on :{port}")
        for name in self.builds:
            wait_until(
                lambda n=name: (
                    urllib.request.urlopen(
                        f"http://127.0.0.1:{self.ports[n]}/api/v1/libraries/", timeout=5
                    ).status
                    == 200
                ),
                60,
                f"{name} HTTP API",
            )
            wait_until(
                lambda n=name: self._celery_ready(n), 60, f"{name} Celery worker"
            )
        self.timings["servers_s"] = round(time.monotonic() - t0, 2)

    def _listening(self, port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex(("127.0.0.1", port)) == 0

    def _celery_ready(self, name: str) -> bool:
        proc = self.proc(f"{name}-celery")
        if proc.popen.poll() is not None:
            raise RuntimeError("the Celery worker exited; see " + str(proc.log))
        # prefork: the main process plus its pool children
        return len(proc.pids()) >= 1 + self.celery_concurrency

    def _spawn(
        self, name: str, argv: list[str], env: dict | None = None, cwd: Path = ROOT
    ) -> Proc:
        log = self.workdir / f"{name}.log"
        handle = open(log, "wb")  # noqa: SIM115 - closed with the process
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**(self.env or os.environ), **(env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def _python(self, *args: str, cwd: Path = ROOT, env: dict | None = None) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=cwd,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    # PostgreSQL
    def _start_postgres(self) -> None:
        dirs = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: float(p.parent.name),
        )
        if not dirs and shutil.which("initdb"):
            dirs = [Path(shutil.which("initdb")).parent]
        if not dirs:
            raise RuntimeError(
                "PostgreSQL binaries (initdb, pg_ctl) not found; try --shared-services"
            )
        self._pg_bin = dirs[-1]
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            self._pg_dir = Path(
                tempfile.mkdtemp(prefix="refdesk-bench-pg-", dir="/tmp")
            )
            os.chown(self._pg_dir, user.pw_uid, user.pw_gid)
            self._pg_as = ["runuser", "-u", "postgres", "--"]
        else:
            self._pg_dir = Path(tempfile.mkdtemp(prefix="refdesk-bench-pg-"))
        data = self._pg_dir / "data"
        subprocess.run(
            [*self._pg_as, str(self._pg_bin / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        port = free_port()
        options = " ".join(
            [
                f"-p {port}",
                f"-k {self._pg_dir}",
                "-c listen_addresses=127.0.0.1",
                "-c shared_preload_libraries=pg_stat_statements",
                "-c pg_stat_statements.track=all",
                "-c max_connections=300",
                "-c shared_buffers=128MB",
                # to place stalls: WAL flush time per window, and in the log
                # every checkpoint, autovacuum run and lock wait over 1 s
                "-c track_wal_io_timing=on",
                "-c log_checkpoints=on",
                "-c log_autovacuum_min_duration=0",
                "-c log_lock_waits=on",
            ]
        )
        subprocess.run(
            [*self._pg_as, str(self._pg_bin / "pg_ctl"), "-D", str(data), "-l",
             str(self._pg_dir / "server.log"), "-w", "-t", "60", "-o", options, "start"],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.pg = {
            "mode": "own",
            "port": port,
            "admin_url": admin,
            "url": f"postgres://postgres@127.0.0.1:{port}/{DB_NAME}",
            "settings": "initdb defaults (fsync on, synchronous_commit on), shared_buffers 128MB, "
            "max_connections 300, pg_stat_statements, track_wal_io_timing, "
            "checkpoints, autovacuum runs and lock waits logged",
        }
        self._sql(f'CREATE DATABASE "{DB_NAME}"')
        self._sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def _use_shared_services(self) -> None:
        admin = "postgresql://postgres@127.0.0.1:5432/postgres"
        self.pg = {
            "mode": "shared",
            "port": 5432,
            "admin_url": admin,
            "url": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
            "settings": "the machine's PostgreSQL on 5432",
        }
        self._sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        self._sql(f'CREATE DATABASE "{DB_NAME}"')
        self.redis = {"mode": "shared", "port": 6379, "url": "redis://127.0.0.1:6379/0"}

    def _sql(self, statement: str, db: str = "postgres"):
        import psycopg

        url = self.pg["admin_url"].rsplit("/", 1)[0] + "/" + db
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(statement)
            with contextlib.suppress(psycopg.ProgrammingError):
                return cursor.fetchall()
        return None

    def query(self, statement: str, db: str = "postgres"):
        return self._sql(statement, db)

    # Redis
    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server not found; try --shared-services")
        port = free_port()
        self._spawn(
            "redis",
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--maxclients", "10000"],
        )  # fmt: skip
        self.redis = {"mode": "own", "port": port, "url": f"redis://127.0.0.1:{port}/0"}
        wait_until(lambda: self.redis_client().ping(), 20, "Redis")

    def redis_client(self):
        import redis

        return redis.Redis.from_url(self.redis["url"], socket_timeout=10)

    # Readings
    @property
    def pg_disk_dir(self) -> Path | None:
        """A directory of ours on the file system of this run's PostgreSQL data
        and WAL (None with the shared services)."""
        if self.pg.get("mode") != "own":
            return None
        return self._pg_dir

    def server_pids(self) -> dict[str, list[int]]:
        """pids of each server, refreshed (uvicorn and Celery restart children)."""
        kids = children_map()
        found = {p.name: p.pids(kids) for p in self.procs if p.popen.poll() is None}
        if self.pg.get("mode") == "own":
            with contextlib.suppress(OSError, ValueError):
                pid = int(
                    (self._pg_dir / "data" / "postmaster.pid").read_text().split()[0]
                )
                found["postgres"] = tree(pid, kids)
        return found

    def versions(self) -> dict:
        import celery
        import channels
        import channels_redis
        import django
        import psycopg
        import psycopg_pool
        import redis
        import uvicorn
        import websockets

        found = {
            "python": platform.python_version(),
            "django": django.get_version(),
            "channels": channels.__version__,
            "channels_redis": channels_redis.__version__,
            "uvicorn": uvicorn.__version__,
            "websockets": websockets.__version__,
            "psycopg": psycopg.__version__,
            "psycopg_pool": psycopg_pool.__version__,
            "redis_py": redis.__version__,
            "celery": celery.__version__,
        }
        with contextlib.suppress(ImportError):
            import uvloop

            found["uvloop"] = uvloop.__version__
        with contextlib.suppress(Exception):
            found["postgresql"] = self.query("SHOW server_version")[0][0]
        with contextlib.suppress(Exception):
            found["redis"] = self.redis_client().info("server")["redis_version"]
        return found

    def logs_tail(self, lines: int = 20) -> dict[str, list[str]]:
        found = {}
        for proc in self.procs:
            with contextlib.suppress(OSError):
                text = proc.log.read_text(errors="replace").splitlines()
                found[proc.name] = text[-lines:]
        return found

    def postgres_events(self) -> list[dict]:
        """Checkpoints, autovacuum runs and lock waits of the bench's own
        PostgreSQL so far (none with --shared-services)."""
        if self.pg.get("mode") != "own" or self._pg_dir is None:
            return []
        with contextlib.suppress(OSError):
            return postgres_events(
                (self._pg_dir / "server.log").read_text(errors="replace")
            )
        return []

    def log_problems(self) -> dict[str, int]:
        """ERROR/CRITICAL lines and tracebacks in each server's log."""
        found = {}
        for proc in self.procs:
            with contextlib.suppress(OSError):
                text = proc.log.read_text(errors="replace")
                found[proc.name] = sum(
                    1
                    for line in text.splitlines()
                    if " ERROR " in line
                    or " CRITICAL " in line
                    or line.startswith("Traceback")
                )
        return found

    def stop(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        if self.pg.get("mode") == "own" and self._pg_dir is not None:
            with contextlib.suppress(Exception):
                subprocess.run(
                    [*self._pg_as, str(self._pg_bin / "pg_ctl"), "-D",
                     str(self._pg_dir / "data"), "-m", "fast", "-w", "stop"],
                    capture_output=True, timeout=60,
                )  # fmt: skip
            shutil.rmtree(self._pg_dir, ignore_errors=True)
        if self.redis.get("mode") == "shared" and self.env:
            with contextlib.suppress(Exception):
                client = self.redis_client()
                prefix = self.env["REFDESK_REDIS_PREFIX"]
                for key in client.scan_iter(match=f"{prefix}*", count=1000):
                    client.delete(key)
