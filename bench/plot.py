"""Draws the chat benchmark's results: updates handled per second against the number of
customers chatting at once, carebot and the echo bot, per database (closed loop), and the
99th-percentile latency at a steady offered rate (open loop).

    .venv/bin/python -m bench.plot [--results bench/results/chat.jsonl] [--script full]

The newest result of each (bot, database, customers) in the file is drawn.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
STYLES = {
    ("carebot", "postgresql"): ("tab:blue", "-"),
    ("carebot", "sqlite"): ("tab:blue", "--"),
    ("echo", "postgresql"): ("tab:gray", "-"),
    ("echo", "sqlite"): ("tab:gray", "--"),
}


def newest(results: list[dict[str, Any]], mode: str, script: str) -> dict[tuple[str, str], Any]:
    """(bot, database) -> {customers: result}, the last line for each winning."""
    series: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for result in results:
        if result.get("mode", "closed") == mode and result.get("script", "full") == script:
            key = (result["bot"], result["database"])
            series.setdefault(key, {})[result["customers"]] = result
    return series


def draw(results: list[dict[str, Any]], script: str, out: Path) -> None:
    figure, (rate, latency) = plt.subplots(1, 2, figsize=(12, 5))
    for key, points in sorted(newest(results, "closed", script).items()):
        customers = sorted(points)
        color, line = STYLES.get(key, ("black", ":"))
        rate.plot(
            customers,
            [points[n]["updates_per_second"] for n in customers],
            color=color,
            linestyle=line,
            marker="o",
            label=f"{key[0]} · {key[1]}",
        )
    rate.set(
        xscale="log",
        xlabel="customers chatting at once",
        ylabel="updates handled per second",
        title="Closed loop: maximum throughput",
    )
    rate.set_ylim(bottom=0)
    gaps: set[float] = set()
    for key, points in sorted(newest(results, "open", script).items()):
        customers = sorted(points)
        gaps.update(points[n]["interval_s"] for n in customers)
        color, line = STYLES.get(key, ("black", ":"))
        latency.plot(
            customers,
            [points[n]["p99_ms"] for n in customers],
            color=color,
            linestyle=line,
            marker="o",
            label=f"{key[0]} · {key[1]}",
        )
    latency.axhline(50, color="tab:red", linewidth=0.8, label="target p99 50 ms")
    latency.set(
        xscale="log",
        yscale="log",
        xlabel="customers chatting at once, each writing every "
        + " / ".join(f"{gap:g}" for gap in sorted(gaps))
        + " s on average",
        ylabel="p99 latency, ms",
        title="Open loop: steady offered rate",
    )
    for axes in (rate, latency):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.suptitle(f"carebot chat benchmark ({script} script) vs a bare aiogram echo bot")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "chat.jsonl")
    parser.add_argument("--script", default="full", choices=["full", "cheap"])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "chat-throughput.png"
    )
    args = parser.parse_args()
    lines = args.results.read_text(encoding="utf-8").splitlines()
    draw([json.loads(line) for line in lines if line.strip()], args.script, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
