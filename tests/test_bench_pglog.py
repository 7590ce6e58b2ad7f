"""bench.stack.postgres_events: what the bench's PostgreSQL log says happened."""

from bench.stack import postgres_events

LOG = """\
2026-11-30 09:41:55.101 UTC [4100] LOG:  database system is ready to accept connections
2026-11-30 09:42:41.512 UTC [4102] LOG:  checkpoint starting: time
2026-11-30 09:42:41.700 UTC [4200] LOG:  automatic vacuum of table "refdesk_bench.public.chat_conversation": index scans: 0
\tpages: 0 removed, 40 remain, 40 scanned (100.00% of total)
\tsystem usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.18 s
2026-11-30 09:42:42.001 UTC [4300] LOG:  process 4300 still waiting for ShareLock on transaction 991 after 1000.123 ms
2026-11-30 09:42:42.002 UTC [4300] STATEMENT:  UPDATE chat_conversation SET last_seq = last_seq + 1
2026-11-30 09:42:43.900 UTC [4102] LOG:  checkpoint complete: wrote 12 buffers (0.1%); sync files=9, sync=0.150 s, total=2.388 s
"""


def test_checkpoints_autovacuum_and_lock_waits_are_placed_in_time():
    events = postgres_events(LOG)
    assert [e["at"] for e in events] == [
        "2026-11-30 09:42:41.512 UTC",
        "2026-11-30 09:42:41.700 UTC",
        "2026-11-30 09:42:42.001 UTC",
        "2026-11-30 09:42:43.900 UTC",
    ]
    assert events[0]["event"] == "LOG:  checkpoint starting: time"
    # an entry's indented detail lines belong to it
    assert "elapsed: 0.18 s" in events[1]["event"]
    assert "still waiting for ShareLock" in events[2]["event"]
    assert "sync=0.150 s" in events[3]["event"]


def test_nothing_to_report_and_the_limit():
    assert postgres_events("") == []
    assert postgres_events("2026-11-30 09:41:55.101 UTC [1] LOG:  ready\n") == []
    many = "".join(
        f"2026-11-30 09:42:{n:02d}.000 UTC [1] LOG:  checkpoint starting: time\n"
        for n in range(10)
    )
    assert [e["at"][17:19] for e in postgres_events(many, limit=3)] == [
        "07",
        "08",
        "09",
    ]
