"""The bench report: each phase's slowest message, and p99 ratios by round."""

from bench.report import _by_round_line, _slowest_table
from bench.run import _by_round, _p99_by_round


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


def level_phase(setup, round_, p99, conversations=1000, kind="level"):
    return {
        "setup": setup,
        "kind": kind,
        "conversations": conversations,
        "round": round_,
        "latency": {"delivery": {"p99": p99}},
    }


def test_the_p99_ratio_is_taken_round_by_round_against_the_adjacent_phase():
    phases = [
        level_phase("refdesk", 1, 64.9),
        level_phase("plain", 1, 32.1),
        level_phase("plain", 2, 29.8),
        level_phase("refdesk", 2, 149.4),
        level_phase("refdesk", 1, 5.0, conversations=200),
        level_phase("plain", 1, 1.0, kind="warmup"),
        level_phase("refdesk@try", 1, 1.0),
    ]
    assert _p99_by_round(phases, 1000, "plain") == [2.02, 5.01]
    assert _p99_by_round(phases, 1000, "bare") == [None, None]
    assert _by_round([2.02, 5.01]) == " (by round: 2.02x, 5.01x)"
    assert _by_round([2.02, None]) == " (by round: 2.02x, –)"
    assert _by_round([2.02]) == ""


def test_the_report_lists_ratios_by_round_only_for_levels_run_more_than_once():
    levels = {
        "50": {"p99_by_round_vs_plain": [1.42]},
        "200": {"p99_by_round_vs_plain": [2.23, 1.1]},
        "1000": {"p99_by_round_vs_plain": [2.02, None]},
    }
    [blank, line] = _by_round_line(levels)
    assert blank == ""
    assert line.endswith("200: 2.23, 1.10; 1000: 2.02, –.")
    assert "50:" not in line
    assert _by_round_line({"50": {"p99_by_round_vs_plain": [1.42]}}) == []
