"""Turn a bench result (the JSON written by bench/run.py) into Markdown and a plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETUPS = ("refdesk", "plain", "bare")
NAMES = {"refdesk": "refdesk", "plain": "plain Channels", "bare": "bare relay"}


def _setups(result: dict) -> list[str]:
    return result["summary"].get("setups") or list(SETUPS)


def _name(setup: str) -> str:
    return NAMES.get(setup, setup)


def _f(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _commits(row: dict) -> str:
    commits = row.get("db_xacts_per_msg")
    return "" if commits is None else f" ({commits:.2f})"


def _reads(row: dict) -> str:
    reads = row.get("redis_reads_per_msg")
    return "" if reads is None else f" ({reads:.2f})"


def _pair(a, b, digits: int = 1) -> str:
    return f"{_f(a, digits)} / {_f(b, digits)}"


def _by_round_line(levels: dict) -> list[str]:
    """The delivery p99 ratio to plain, round by round, where there were rounds."""
    by_round = [
        (level, row["p99_by_round_vs_plain"])
        for level, row in levels.items()
        if len(row.get("p99_by_round_vs_plain") or []) > 1
    ]
    if not by_round:
        return []
    return [
        "",
        "Delivery p99 ×plain round by round (a round's phases run next to each "
        "other, so each ratio compares the two on about the same host): "
        + "; ".join(
            f"{level}: " + ", ".join(_f(r, 2) for r in ratios)
            for level, ratios in by_round
        )
        + ".",
    ]


def markdown(result: dict, png_name: str | None = None) -> str:
    s = result["summary"]
    m = result["machine"]
    v = result["versions"]
    p = result["parameters"]
    lines = [
        f"# refdesk bench, {result['started_at'][:16].replace('T', ' ')} UTC"
        f" ({result['profile']} run{', ' + result['label'] if result.get('label') else ''})",
        "",
        f"Machine: {m.get('cpus')} cores ({m.get('cpu_model', '?')}), {m.get('memory_gib')} GiB, "
        f"Linux {m.get('kernel')}; PostgreSQL {v.get('postgresql')}, Redis {v.get('redis')}, "
        f"Python {v.get('python')}, Django {v.get('django')}, Channels {v.get('channels')}, "
        f"channels_redis {v.get('channels_redis')}, uvicorn {v.get('uvicorn')} "
        f"(--workers {result['settings']['workers']}), websockets {v.get('websockets')}, "
        f"psycopg {v.get('psycopg')}.",
        f"Load: one message every {p['interval']} s per side, {p['steady']} s per phase, "
        f"{p['rounds']} round(s), phases interleaved refdesk / plain / bare.",
        "",
        "## Per load level",
        "",
        "Latencies in ms (p50 / p99 unless marked). CPU is server-side CPU per message "
        "(all server processes of the setup: refdesk = uvicorn + Celery + PostgreSQL + Redis; "
        "plain = uvicorn + Redis; bare = the relay). Waited: time those processes were ready "
        "to run but waited for a CPU (/proc schedstat), per message. `×plain`/`×bare`: "
        "refdesk's figure divided by the reference's. DB queries (commits)/msg: statements per "
        "message and, in brackets, transactions committed per message (PostgreSQL's "
        "counters, flushed about once a second; below 1 when group commit forms). "
        "Redis cmds (reads)/msg: commands per message and, in brackets, the read events "
        "Redis handled per message (a pipeline of publishes is one).",
        "",
        "| conversations | setup | msg/s | delivery p50 / p95 / p99 | patron→librarian | "
        "librarian→patron | start→offer | accept | CPU ms/msg | waited ms/msg | DB queries (commits)/msg "
        "| Redis cmds (reads)/msg | RSS KiB/socket | machine CPU (foreign / steal cores) | errors | lost/dup/reord |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level, row in s["levels"].items():
        for name in _setups(result):
            r = row.get(name)
            if not r:
                continue
            integrity = r["integrity"]
            lines.append(
                f"| {level} | {_name(name)} | {_f(r['msg_per_s'])} | "
                f"{_f(r['delivery_p50'], 2)} / {_f(r['delivery_p95'], 2)} / {_f(r['delivery_p99'], 2)} | "
                f"{_pair(r['p2l_p50'], r['p2l_p99'], 2)} | {_pair(r['l2p_p50'], r['l2p_p99'], 2)} | "
                f"{_pair(r['start_offer_p50'], r['start_offer_p99'])} | "
                f"{_pair(r['accept_p50'], r['accept_p99'])} | "
                f"{_f(r['cpu_ms_per_msg_total'], 2)} | "
                f"{_f(r.get('runq_wait_ms_per_msg_total'), 2)} | {_f(r['db_queries_per_msg'])}{_commits(r)} | "
                f"{_f(r['redis_cmds_per_msg'])}{_reads(r)} | {_f(r['rss_per_socket_kib'])} | "
                f"{_f(r['machine_busy_pct'])}% ({_f(r['foreign_cores'], 2)} / {_f(r.get('steal_cores'), 2)})"
                f"{' noisy' if r['noisy'] else ''} | "
                f"{r['errors']} | {integrity.get('losses', 0)}/{integrity.get('duplicates', 0)}/"
                f"{integrity.get('reorders', 0)} |"
            )
        ratios = [
            (f"refdesk ×{ref}", row.get(f"ratio_vs_{ref}")) for ref in ("plain", "bare")
        ]
        ratios += [
            (f"{name} ×refdesk", row.get(f"ratio_{name}_vs_refdesk"))
            for name in _setups(result)
            if "@" in name
        ]
        for title, ratio in ratios:
            if ratio:
                lines.append(
                    f"| {level} | {title} | | {_f(ratio['delivery_p50'], 1)} / "
                    f"{_f(ratio['delivery_p95'], 1)} / {_f(ratio['delivery_p99'], 1)} | | | | | "
                    f"{_f(ratio['cpu_ms_per_msg_total'], 1)} | "
                    f"{_f(ratio.get('runq_wait_ms_per_msg_total'), 1)} | | | "
                    f"{_f(ratio['rss_per_socket_kib'], 1)} | | | |"
                )
    lines += _by_round_line(s["levels"])
    lines += [
        "",
        f"Start→offer and accept: chats started one at a time ({p['trickle_rate']}/s) during "
        f"the exchange. The same when each phase opens its chats in a burst ({p['start_rate']}/s):",
        "",
        "| conversations | burst start→offer p50 / p99 | burst accept p99 | burst open time (s) |",
        "|---|---|---|---|",
    ]
    for level, row in s["levels"].items():
        r = row.get("refdesk")
        if r:
            lines.append(
                f"| {level} | {_pair(r['burst_start_offer_p50'], r['burst_start_offer_p99'])} | "
                f"{_f(r['burst_accept_p99'])} | {_f(r['burst_open_s'])} |"
            )
    lines += _slowest_table(result["phases"])
    ramp = s["ramp"]
    if not p["ramp_rates"]:
        lines += ["", "## Throughput ramp", "", "Not run (`--ramp-rates 0`)."]
    else:
        lines += _ramp_table(result, p, ramp)
    of = s["overflow"]
    lines += [
        "",
        "## Overflow timer",
        "",
        f"{of['measured']} of {of['probes']} probes (a chat at a library whose librarian is at "
        "the desk but never answers; lateness = first overflow offer − the local step's "
        f"`escalate_at`): min {_f(of['lateness_s_min'], 3)} s, p50 {_f(of['lateness_s_p50'], 3)} s, "
        f"max {_f(of['lateness_s_max'], 3)} s; allowed 0 … {of['bound_s']} s.",
        "",
        "## Targets",
        "",
        "| target | met | figures |",
        "|---|---|---|",
    ]
    for t in result["targets"]:
        met = {True: "met", False: "**missed**", None: "not run"}[t["met"]]
        lines.append(f"| {t['target']} | {met} | {t['figures']} |")
    noisy = [
        f"{ph['setup']} {ph['kind']} {ph['conversations']}"
        for ph in result["phases"]
        if ph.get("noisy")
    ]
    lines += [
        "",
        "Noisy phases (other processes used > 0.3 cores): "
        + (", ".join(noisy) or "none")
        + ".",
        f"Overall: {'PASS' if result['ok'] else 'FAIL'} (message integrity).",
    ]
    if png_name:
        lines += ["", f"![latency against load]({png_name})"]
    return "\n".join(lines) + "\n"


def _slowest_table(phases: list[dict]) -> list[str]:
    """Each load phase's slowest message and, when the flush probe ran
    (`--flush-probe`), the longest disk flush made while it was under way:
    a stall of the disk, or not."""
    level = [ph for ph in phases if ph.get("kind") == "level" and ph.get("slowest")]
    if not level:
        return []
    lines = [
        "",
        "## Slowest messages",
        "",
        "Each phase's slowest delivery, when it was sent, and (with `--flush-probe`) "
        "the longest 8 kB `fdatasync` beside PostgreSQL's WAL that ran while it was "
        "under way, with the probe's p50 / max over the phase. A slow flush beside a "
        "slow refdesk message points at the disk, which only refdesk waits on.",
        "",
        "| conversations | round | setup | slowest (ms) | sent (UTC) | flush during it (ms) "
        "| probe p50 / max (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for ph in level:
        worst = ph["slowest"][0]
        probe = ph.get("flush_probe") or {}
        lines.append(
            f"| {ph['conversations']} | {ph.get('round')} | {_name(ph['setup'])} | "
            f"{_f(worst['ms'], 1)} | {worst['sent_utc'][11:23]} | "
            f"{_f(worst.get('flush_max_ms'), 1)} | "
            f"{_pair(probe.get('p50'), probe.get('max'), 2)} |"
        )
    return lines


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["summary"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"refdesk": "tab:red", "plain": "tab:blue", "bare": "tab:green"}
    spare = iter(["tab:orange", "tab:purple", "tab:brown", "tab:olive", "tab:cyan"])
    levels = [int(lv) for lv in s["levels"]]
    for name in _setups(result):
        colours.setdefault(name, next(spare, "black"))
        xs, p50, p99 = [], [], []
        for level in levels:
            r = s["levels"][str(level)].get(name)
            if r and r["delivery_p50"] is not None:
                xs.append(level)
                p50.append(r["delivery_p50"])
                p99.append(r["delivery_p99"])
        left.plot(xs, p99, "o-", color=colours[name], label=f"{_name(name)} p99")
        left.plot(
            xs, p50, "o--", color=colours[name], alpha=0.6, label=f"{_name(name)} p50"
        )
        best: dict = {}
        for st in s["ramp"].get(name, {}).get("steps", []):
            if st["p99"] is not None and (
                st["offered"] not in best or st["p99"] < best[st["offered"]]["p99"]
            ):
                best[st["offered"]] = st  # a retried step: plot the better attempt
        steps = list(best.values())
        right.plot(
            [st["delivered_per_s"] for st in steps],
            [st["p99"] for st in steps],
            "o-",
            color=colours[name],
            label=f"{_name(name)} p99",
        )
    left.set_xlabel("concurrent conversations (one message per side every "
                    f"{result['parameters']['interval']} s)")  # fmt: skip
    left.set_ylabel("delivery latency (ms)")
    left.set_yscale("log")
    left.set_xscale("log")
    left.set_xticks(levels, [str(x) for x in levels])
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    left.set_title("latency against load")
    right.axhline(100, color="grey", linestyle=":", label="100 ms")
    right.set_xlabel("delivered messages per second")
    right.set_ylabel("delivery p99 (ms)")
    right.set_yscale("log")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    right.set_title("throughput ramp")
    if not result["parameters"]["ramp_rates"]:
        right.set_title("throughput ramp: not run (--ramp-rates 0)")
    fig.suptitle(
        f"refdesk bench {result['started_at'][:16]} ({result['profile']})", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ramp_table(result: dict, p: dict, ramp: dict) -> list[str]:
    lines = [
        "",
        f"## Throughput ramp ({p['ramp_pairs']} conversations, {p['ramp_step']} s steps)",
        "",
        "Sustained = the highest step delivered at ≥ 90% of the offered rate with delivery "
        "p99 ≤ 100 ms and nothing left undelivered.",
        "",
        "| setup | sustained msg/s | first failing step | steps (offered: delivered/s, p99 ms) |",
        "|---|---|---|---|",
    ]
    for name in _setups(result):
        r = ramp.get(name)
        if not r:
            continue
        steps = "; ".join(
            f"{st['offered']}: {_f(st['delivered_per_s'], 0)}, {_f(st['p99'], 1)}"
            f"{'' if st['ok'] else ' ✗'}{' (retry)' if st.get('retry') else ''}"
            for st in r["steps"]
        )
        bound = " (load generator saturated)" if r["loadgen_bound"] else ""
        if r["first_failed"] is None:
            bound = " (never failed: a floor)" + bound
        lines.append(
            f"| {_name(name)} | {'≥ ' if r['first_failed'] is None else ''}"
            f"{_f(r['sustained_msg_per_s'], 0)}{bound} | "
            f"{_f(r['first_failed'])} | {steps} |"
        )
    lines.append(
        f"| refdesk ×plain / ×bare | {_f(ramp.get('ratio_vs_plain'), 2)} / "
        f"{_f(ramp.get('ratio_vs_bare'), 2)} | | |"
    )
    return lines


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    print(markdown(data))
    if len(sys.argv) > 2:
        plot(data, Path(sys.argv[2]))
