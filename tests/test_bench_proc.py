"""The bench's /proc readings."""

import os
import subprocess
import sys
import time

from bench.stack import cpu_seconds, runq_wait_seconds

NO_SUCH_PID = 2**31 - 1  # above any pid_max

SPIN_ON_ONE_CORE = """
import os, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
end = time.monotonic() + 1.0
while time.monotonic() < end:
    pass
"""


def test_run_queue_wait_is_read_for_live_processes_and_skips_gone_ones():
    mine = runq_wait_seconds([os.getpid()])
    assert mine >= 0.0
    assert runq_wait_seconds([NO_SUCH_PID]) == 0.0
    assert runq_wait_seconds([os.getpid(), NO_SUCH_PID]) >= mine


def test_run_queue_wait_grows_while_threads_wait_for_a_cpu():
    """Three busy processes on one core: at any moment two of them wait."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", SPIN_ON_ONE_CORE]) for _ in range(3)
    ]
    try:
        time.sleep(0.6)
        pids = [p.pid for p in spinners]
        waited, ran = runq_wait_seconds(pids), cpu_seconds(pids)
    finally:
        for spinner in spinners:
            spinner.wait(timeout=10)
    # one core's time shared three ways: each ran a third of it and waited two
    assert ran > 0.2
    assert waited > 1.3 * ran
