"""The bench's /proc readings."""

import os
import subprocess
import sys

from bench.stack import cpu_seconds, machine_cpu, runq_wait_seconds

NO_SUCH_PID = 2**31 - 1  # above any pid_max

# Spin on one core until this process has run 0.3 s, say so, then stay alive
# (blocked on stdin) so that its /proc entries can be read.
SPIN_ON_ONE_CORE = """
import os, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
while time.process_time() < 0.3:
    pass
print("spun", flush=True)
sys.stdin.read()
"""


def test_run_queue_wait_is_read_for_live_processes_and_skips_gone_ones():
    mine = runq_wait_seconds([os.getpid()])
    assert mine >= 0.0
    assert runq_wait_seconds([NO_SUCH_PID]) == 0.0
    assert runq_wait_seconds([os.getpid(), NO_SUCH_PID]) >= mine


def test_run_queue_wait_grows_while_threads_wait_for_a_cpu():
    """Three busy processes on one core: while one runs, two wait."""
    spinners = [
        subprocess.Popen(
            [sys.executable, "-c", SPIN_ON_ONE_CORE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for spinner in spinners:
            assert spinner.stdout.readline() == "spun\n"
        pids = [p.pid for p in spinners]
        waited, ran = runq_wait_seconds(pids), cpu_seconds(pids)
    finally:
        for spinner in spinners:
            spinner.stdin.close()
            spinner.wait(timeout=10)
            spinner.stdout.close()
    # one core shared three ways: each waited about twice as long as it ran
    assert ran > 0.8
    assert waited > 1.3 * ran


def test_machine_cpu_splits_interrupts_and_steal_out_of_busy_time():
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = "cpu  100 5 50 1000 20 3 7 11 0 0\ncpu0 50 2 25 500 10 1 3 5 0 0\n"
    busy, total, irq, steal = machine_cpu(stat)
    assert (busy, total, irq, steal) == (176, 1196, 10, 11)
    busy, total, irq, steal = machine_cpu()  # this machine's own
    assert 0 <= irq <= busy <= total
    assert 0 <= steal <= busy
