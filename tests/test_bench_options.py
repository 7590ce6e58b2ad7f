"""The bench's command-line layout options (bench/run.py)."""

import asyncio
from pathlib import Path

from bench.run import Bench, _variant, costs


def test_a_variant_names_its_tree_and_optionally_its_worker_counts():
    assert _variant("try=/tmp/try") == ("refdesk@try", Path("/tmp/try"), None, None)
    assert _variant("w3=/tmp/t:3") == ("refdesk@w3", Path("/tmp/t"), 3, None)
    assert _variant("one=.:2/0") == ("refdesk@one", Path("."), 2, 0)


def test_refdesk_is_charged_with_both_of_its_servers_and_its_services():
    charged = costs("refdesk@try")
    assert charged["app"] == ["refdesk@try-web", "refdesk@try-sockets"]
    assert set(charged["total"]) == {
        "refdesk@try-web",
        "refdesk@try-sockets",
        "refdesk@try-celery",
        "postgres",
        "redis",
    }
    assert costs("plain") == {"app": ["plain-web"], "total": ["plain-web", "redis"]}


def test_no_ramp_rates_opens_no_ramp_conversations():
    """`--ramp-rates 0` skips the ramp: it used to open its conversations anyway."""
    bench = Bench.__new__(Bench)  # no stack: touching a setup raises
    bench.profile = {"ramp_rates": [], "ramp_pairs": 40, "start_rate": 40.0}
    bench.order = ["refdesk", "plain", "bare"]
    bench.setups = {}
    bench.phases = []
    asyncio.run(bench.ramp())
    assert bench.phases == []
