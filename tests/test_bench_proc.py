"""The bench's /proc readings."""

import multiprocessing
import os
import time

from bench.stack import runq_wait_seconds

NO_SUCH_PID = 2**31 - 1  # above any pid_max


def _spin_on_one_core(seconds: float) -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_run_queue_wait_is_read_for_live_processes_and_skips_gone_ones():
    mine = runq_wait_seconds([os.getpid()])
    assert mine >= 0.0
    assert runq_wait_seconds([NO_SUCH_PID]) == 0.0
    assert runq_wait_seconds([os.getpid(), NO_SUCH_PID]) >= mine


def test_run_queue_wait_grows_while_threads_wait_for_a_cpu():
    """Three busy processes on one core: at any moment two of them wait."""
    workers = [
        multiprocessing.Process(target=_spin_on_one_core, args=(0.6,)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    time.sleep(0.4)
    waited = runq_wait_seconds([w.pid for w in workers])
    for worker in workers:
        worker.join()
    assert waited > 0.1
