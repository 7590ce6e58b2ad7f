"""The bench report's table of each phase's slowest message."""

from bench.report import _slowest_table


def phase(setup, slowest, probe=None, kind="level"):
    found = {
        "setup": setup,
        "kind": kind,
        "conversations": 50,
        "round": 1,
        "slowest": slowest,
    }
    if probe is not None:
        found["flush_probe"] = probe
    return found


def test_each_load_phase_shows_its_slowest_message_and_the_flush_beside_it():
    rows = _slowest_table(
        [
            phase(
                "refdesk",
                [
                    {
                        "sent_utc": "2026-11-30T11:41:12.474+00:00",
                        "ms": 69.366,
                        "flush_max_ms": 81.014,
                    },
                    {"sent_utc": "2026-11-30T11:41:12.490+00:00", "ms": 54.9},
                ],
                {"p50": 0.331, "max": 81.014},
            ),
            phase("plain", [{"sent_utc": "2026-11-30T11:41:36.985+00:00", "ms": 6.4}]),
            phase("refdesk", [{"sent_utc": "x", "ms": 1.0}], kind="warmup"),
        ]
    )

    table = [row for row in rows if row.startswith("| 50 ")]
    assert table == [
        "| 50 | 1 | refdesk | 69.4 | 11:41:12.474 | 81.0 | 0.33 / 81.01 |",
        "| 50 | 1 | plain Channels | 6.4 | 11:41:36.985 | – | – / – |",
    ]


def test_no_table_without_load_phases():
    assert _slowest_table([phase("refdesk", [], kind="level")]) == []
