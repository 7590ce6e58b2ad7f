"""The bench's flush probe: synced writes timed beside PostgreSQL's WAL, and
each slow message matched with the flushes made while it was under way."""

import time

from bench.flushprobe import FlushProbe, slowest


def test_each_slow_message_gets_the_longest_flush_made_while_it_was_under_way():
    deliveries = [(100.0, 3.0), (101.0, 120.0), (102.0, 2.0), (103.0, 40.0)]
    flushes = [
        (100.90, 90.0),  # before the 120 ms message was sent: not counted
        (100.97, 80.0),  # running when it was sent
        (101.05, 1.0),
        (103.03, 35.0),
        (103.05, 0.5),  # after the 40 ms message arrived
    ]

    found = slowest(deliveries, flushes, count=2)

    assert [f["ms"] for f in found] == [120.0, 40.0]
    assert [f["flush_max_ms"] for f in found] == [80.0, 35.0]
    assert found[0]["sent_utc"] == "1970-01-01T00:01:41.000+00:00"


def test_without_the_probe_the_slowest_messages_carry_no_flush_figure():
    found = slowest([(1.0, 5.0), (2.0, 9.0)], None)
    assert found == [
        {"sent_utc": "1970-01-01T00:00:02.000+00:00", "ms": 9.0},
        {"sent_utc": "1970-01-01T00:00:01.000+00:00", "ms": 5.0},
    ]


def test_the_probe_times_real_synced_writes_and_leaves_no_file(tmp_path):
    probe = FlushProbe(tmp_path, interval=0.01)
    started = time.time()
    probe.start()
    deadline = time.monotonic() + 10
    while len(probe.samples) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)  # poll until it has taken real samples, at most 10 s
    probe.stop()

    assert len(probe.samples) >= 5
    assert all(ms > 0 for _, ms in probe.samples)
    assert probe.between(started, time.time()) == probe.samples
    assert probe.between(0, started - 1) == []
    assert not (tmp_path / "bench-flush-probe").exists()
