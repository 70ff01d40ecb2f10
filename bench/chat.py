"""Chat throughput and latency: simulated customers chatting with the real bot process,
against a bare aiogram echo bot as the baseline, both through the same local emulator.

    .venv/bin/python -m bench.chat --customers 100 1000 --database sqlite
    .venv/bin/python -m bench.chat --customers 1000 --database postgresql+asyncpg://...

Each customer runs the same script in a closed loop (send, wait for the answer, send the
next); latency is the time from the update being queued in the emulator to the bot's
answer arriving there. Prints one JSON object per run and writes them to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sandbox.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ("/start", "/points", "/help", "/menu", "/profile")
TOKEN = "5000000001:bench-carebot-chat-throughput-000000"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def start_bot(kind: str, emulator: Emulator, database: str, workdir: Path) -> Any:
    env = {
        **os.environ,
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": emulator.base_url,
        "HTTP_PORT": "0",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }
    if kind == "carebot":
        env["DATABASE_URL"] = database
        command = [str(Path(sys.executable).with_name("carebot")), "run"]
    else:
        command = [sys.executable, str(ROOT / "bench" / "echo_bot.py")]
    process = await asyncio.create_subprocess_exec(*command, env=env, cwd=workdir)
    ready = await emulator.until(lambda: emulator.calls["getUpdates"] > 0 or None, 60)
    if ready is None:
        process.kill()
        raise RuntimeError(f"{kind} did not start polling")
    return process


async def load(emulator: Emulator, customers: int, rounds: int, first_id: int) -> dict[str, Any]:
    """Closed-loop load; returns throughput and latency figures."""
    events = emulator.subscribe()
    waiting: dict[int, asyncio.Future[float]] = {}
    loop = asyncio.get_running_loop()

    async def route() -> None:
        while True:
            event = await events.get()
            if event["kind"] == "bot_message":
                future = waiting.pop(event["chat_id"], None)
                if future is not None and not future.done():
                    future.set_result(time.perf_counter())

    latencies: list[float] = []

    async def customer(user_id: int, steps: list[str], record: bool) -> None:
        for text in steps:
            answer: asyncio.Future[float] = loop.create_future()
            waiting[user_id] = answer
            sent = time.perf_counter()
            emulator.user_sends_text(user_id, text)
            arrived = await asyncio.wait_for(answer, 120)
            if record:
                latencies.append(arrived - sent)

    router = asyncio.create_task(route())
    ids = range(first_id, first_id + customers)
    for user_id in ids:
        emulator.customer(user_id, f"C{user_id}", language_code="zh")
    # Warm-up: every customer's first exchange (creates their record) is not measured.
    await asyncio.gather(*(customer(u, ["/start"], False) for u in ids))
    steps = [SCRIPT[(i + 1) % len(SCRIPT)] for i in range(rounds)]
    started = time.perf_counter()
    await asyncio.gather(*(customer(u, steps, True) for u in ids))
    elapsed = time.perf_counter() - started
    router.cancel()
    emulator.unsubscribe(events)
    return {
        "exchanges": len(latencies),
        "seconds": round(elapsed, 3),
        "updates_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


async def measure(kind: str, customers: int, rounds: int, database: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = database
        if database == "sqlite":
            url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        async with Emulator() as emulator:
            process = await start_bot(kind, emulator, url, workdir)
            try:
                figures = await load(emulator, customers, rounds, 10_000_000)
            finally:
                process.terminate()
                await process.wait()
    return {
        "bot": kind,
        "customers": customers,
        "rounds": rounds,
        "database": "sqlite" if database == "sqlite" else "postgresql",
        **figures,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "chat.jsonl")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as out:
        for customers in args.customers:
            runs = [
                await measure("echo", customers, args.rounds, args.database),
                await measure("carebot", customers, args.rounds, args.database),
            ]
            ratio = runs[1]["updates_per_second"] / runs[0]["updates_per_second"]
            for run in runs:
                run["ratio_to_echo"] = round(ratio, 3) if run["bot"] == "carebot" else 1.0
                line = json.dumps(run)
                print(line, flush=True)
                out.write(line + "\n")


if __name__ == "__main__":
    asyncio.run(main())
