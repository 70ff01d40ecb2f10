"""Outreach rate: a backlog of due messages drained by the real bot process, or by two of
them sharing one PostgreSQL outbox and one Redis pace, through the local emulator
enforcing Telegram's flood limits.

    .venv/bin/python -m bench.outreach --customers 20000 --database sqlite
    .venv/bin/python -m bench.outreach --customers 20000 --senders 2 \\
        --database postgresql+asyncpg://postgres@127.0.0.1:5432/carebot_bench \\
        --redis redis://127.0.0.1:6379/0

Each customer has one marketing message waiting in the outbox, as after a broadcast, and
the emulator (in this process) answers 429 past 30 messages a second, one a second per
chat. Measured: messages a second over the run and over its steady part (from the 10th to
the 90th percentile of deliveries, leaving out the start and the tail), 429s received,
duplicates and customers left without their message (the emulator counts per chat), and
the resident memory of each sender process (from /proc, Linux only) at 10%, 50% and 90%
of deliveries and its peak. A PostgreSQL database given with --database is emptied and
migrated before the run: give a database kept for this. Prints one JSON object and appends
it to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert, select

from bench.fresh import carebot_command, fresh_database
from models import Customer
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.state import JsonDict
from services.clock import SystemClock
from services.outbox import Outbox, Outgoing

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "5000000002:bench-carebot-outreach-rate-00000000"
FIRST_CUSTOMER = 20_000_000
TEXT = (
    "{name}，您好！本周会员日全场饮品第二杯半价，积分双倍。"
    "凭此消息到店出示即可享受优惠，活动截止到本周日。"
)
SAMPLE_SECONDS = 1.0
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CountingEmulator(Emulator):
    """The emulator, noting when each message was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[float] = []

    async def call(
        self, token: str, method: str, params: Mapping[str, Any]
    ) -> tuple[int, JsonDict]:
        status, body = await super().call(token, method, params)
        if status == 200 and method.lower() == "sendmessage":
            self.accepted.append(time.monotonic())
        return status, body


def policy_text(rate: float) -> str:
    """The rate under test, and every scheduled job moved to a weekday three days away, so
    that no job runs (nor catches up) during the run and competes with the backlog."""
    day = WEEKDAYS[(datetime.now(UTC).weekday() + 3) % 7]
    jobs = ("segmentation", "followups", "birthdays", "winback", "surveys", "sla", "digest")
    schedule = "".join(f'{job} = "{day} 12:00"\n' for job in jobs)
    return f"[sending]\nrate_per_second = {rate}\n\n[schedule]\n{schedule}"


async def seed(url: str, emulator: Emulator, customers: int) -> list[int]:
    """Customers who opted in to offers, each with one broadcast message due now."""
    db = Database(url)
    clock = SystemClock()
    chats = list(range(FIRST_CUSTOMER, FIRST_CUSTOMER + customers))
    table = cast(Table, Customer.__table__)
    try:
        for start in range(0, customers, 5000):
            part = chats[start : start + 5000]
            async with db.transaction() as session:
                await session.execute(
                    insert(table),
                    [
                        {
                            "telegram_id": chat,
                            "chat_id": chat,
                            "name": f"顾客{chat}",
                            "locale": "zh",
                            "marketing_opt_in": True,
                            "reachable": True,
                            "created_at": clock.now(),
                        }
                        for chat in part
                    ],
                )
        ids = await customer_ids(db)
        outbox = Outbox(db, clock)
        for start in range(0, customers, 5000):
            await outbox.enqueue(
                Outgoing(
                    key=f"campaign:1:{chat}",
                    chat_id=chat,
                    text=TEXT.format(name=f"顾客{chat}"),
                    kind="broadcast",
                    customer_id=ids[chat],
                    marketing=True,
                )
                for chat in chats[start : start + 5000]
            )
    finally:
        await db.close()
    for chat in chats:
        emulator.customer(chat, f"顾客{chat}", language_code="zh")
    return chats


async def customer_ids(db: Database) -> dict[int, int]:
    async with db.session() as session:
        rows = await session.execute(select(Customer.chat_id, Customer.id))
        return {int(chat): int(cid) for chat, cid in rows.all() if chat is not None}


async def clear_pace(redis_url: str) -> None:
    """A previous run's pace (its next slot, a 429 pause) must not hold this one up."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(f"carebot:{TOKEN.split(':')[0]}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def memory_kib(pid: int) -> tuple[int, int]:
    """Resident set size now and at its peak, KiB (Linux /proc)."""
    now = peak = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return now, peak


def at_share(samples: list[tuple[int, int]], total: int, share: float) -> int:
    """RSS (KiB) at the first sample taken once `share` of the messages were out."""
    for delivered, rss in samples:
        if delivered >= share * total:
            return rss
    return samples[-1][1] if samples else 0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = args.database
        if url == "sqlite":
            url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        await fresh_database(url)
        policy = workdir / "carebot.toml"
        policy.write_text(policy_text(args.rate), "utf-8")
        emulator = CountingEmulator()
        async with emulator:
            emulator.limits(True, global_per_second=30, per_chat_per_second=1)
            chats = await seed(url, emulator, args.customers)
            if args.redis:
                await clear_pace(args.redis)
            env = {
                **os.environ,
                "BOT_TOKEN": TOKEN,
                "TELEGRAM_API_URL": emulator.base_url,
                "DATABASE_URL": url,
                "HTTP_PORT": "0",
                "TIMEZONE": "UTC",
                "CAREBOT_POLICY": str(policy),
                "REDIS_URL": args.redis or "",
                "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            }
            if args.senders > 1:
                # Several instances run in webhook mode (one poller per token); nothing is
                # delivered to this address, as no customer writes during the run.
                env["WEBHOOK_URL"] = "http://127.0.0.1:9/telegram"
            processes = [
                await asyncio.create_subprocess_exec(carebot_command(), "run", env=env, cwd=workdir)
                for _ in range(args.senders)
            ]
            samples: dict[int, list[tuple[int, int]]] = {p.pid: [] for p in processes}
            peaks: dict[int, int] = {}
            started = time.monotonic()
            try:
                while len(emulator.accepted) < args.customers:
                    await asyncio.sleep(SAMPLE_SECONDS)
                    for process in processes:
                        if process.returncode is not None:
                            raise RuntimeError(f"carebot exited with {process.returncode}")
                        rss, peaks[process.pid] = memory_kib(process.pid)
                        samples[process.pid].append((len(emulator.accepted), rss))
                    if time.monotonic() - started > args.timeout:
                        break
                # Anything still in flight, and any duplicate, arrives in this time.
                await asyncio.sleep(3)
            finally:
                for process in processes:
                    if process.returncode is None:
                        process.terminate()
                for process in processes:
                    await process.wait()
            counts = [len(emulator.messages(chat, from_bot=True)) for chat in chats]
            accepted = sorted(emulator.accepted)
            rate_limited = emulator.rate_limited
    return figures(args, accepted, counts, rate_limited, samples, peaks)


def figures(
    args: argparse.Namespace,
    accepted: list[float],
    counts: list[int],
    rate_limited: int,
    samples: dict[int, list[tuple[int, int]]],
    peaks: dict[int, int],
) -> dict[str, Any]:
    total = len(accepted)
    low, high = int(total * 0.1), int(total * 0.9) - 1
    steady = (high - low) / (accepted[high] - accepted[low]) if high > low else 0.0
    overall = (total - 1) / (accepted[-1] - accepted[0]) if total > 1 else 0.0
    return {
        "benchmark": "outreach",
        "database": "sqlite" if args.database == "sqlite" else "postgresql",
        "senders": args.senders,
        "customers": args.customers,
        "configured_rate": args.rate,
        "delivered": total,
        "seconds": round(accepted[-1] - accepted[0], 1) if total > 1 else 0.0,
        "messages_per_second": round(overall, 2),
        "steady_messages_per_second": round(steady, 2),
        "share_of_configured_rate": round(steady / args.rate, 4),
        "rate_limited_429": rate_limited,
        "duplicates": sum(max(0, c - 1) for c in counts),
        "missing": sum(1 for c in counts if c == 0),
        "rss_mib": [
            {
                "at_10": round(at_share(s, args.customers, 0.1) / 1024, 1),
                "at_50": round(at_share(s, args.customers, 0.5) / 1024, 1),
                "at_90": round(at_share(s, args.customers, 0.9) / 1024, 1),
                "peak": round(peaks.get(pid, 0) / 1024, 1),
            }
            for pid, s in samples.items()
        ],
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--senders", type=int, default=1, help="bot processes sending")
    parser.add_argument("--redis", default="", help="REDIS_URL: the pace shared by senders")
    parser.add_argument("--rate", type=float, default=30.0, help="the policy's rate_per_second")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "outreach.jsonl")
    args = parser.parse_args()
    if args.senders > 1 and (args.database == "sqlite" or not args.redis):
        parser.error("several senders need a PostgreSQL --database and --redis")
    # Give up well after the backlog should be out at the configured rate.
    args.timeout = args.customers / args.rate * 1.5 + 120
    result = await run(args)
    line = json.dumps(result)
    print(line, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as out:
        out.write(line + "\n")


if __name__ == "__main__":
    asyncio.run(main())
