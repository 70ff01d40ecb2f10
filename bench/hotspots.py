"""Where the bot's time goes, from a py-spy raw record (`bench.chat --profile DIR`): of the
event loop's thread, the share waiting for work, then the share spent under each function
(inclusive), and under each innermost function of the project's own code.

    .venv/bin/python -m bench.hotspots bench/results/profiles/carebot-open-cheap-postgresql-1000.txt

py-spy samples the wall clock: on a machine short of CPU, time the process waited to be
scheduled is counted where it was, most often in a socket write that woke another process.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

PROJECT = re.compile(r"^(\S+) \(((?:bot|handlers|services|models|jobs)/[^:]+)")
# The event loop waiting in epoll: nothing to do.
IDLE = "select (selectors.py"
# Frames under which everything runs (the command, the event loop), left out of the list.
FRAME = re.compile(
    r"\((typer/|asyncio/(runners|base_events|events)\.py|bot/cli\.py|carebot\))|<module>"
)


def name(frame: str) -> str:
    """A frame without its line number, so one function counts once."""
    return re.sub(r" \((.*?):\d+\)$", r" (\1)", frame)


def summarise(path: Path, top: int) -> str:
    total = idle = 0
    inclusive: Counter[str] = Counter()
    project: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        # The event loop runs in MainThread; SQLAlchemy's greenlets show there too.
        if "MainThread" not in frames[0] or len(frames) < 2:
            continue
        samples = int(count)
        total += samples
        if IDLE in frames[-1]:
            idle += samples
            continue
        for function in {name(frame) for frame in frames[1:] if not FRAME.search(frame)}:
            inclusive[function] += samples
        innermost = next((m for f in reversed(frames) if (m := PROJECT.match(f))), None)
        project[f"{innermost[1]} ({innermost[2]})" if innermost else "(library only)"] += samples
    if not total:
        return f"{path}: no samples of the event loop's thread"
    busy = total - idle
    lines = [f"{path.name}: {total} samples, waiting for work {idle / total:.1%}"]
    lines.append("inclusive, share of busy samples:")
    lines += [f"  {n / busy:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    lines.append("innermost project function, share of busy samples:")
    lines += [f"  {n / busy:6.1%}  {f}" for f, n in project.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("records", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    for record in args.records:
        print(summarise(record, args.top))


if __name__ == "__main__":
    main()
