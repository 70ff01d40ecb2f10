"""Import: a seeded purchase CSV through `carebot import purchases`, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.imports --rows 1000000 --database sqlite \\
        postgresql+asyncpg://postgres@127.0.0.1:5432/carebot_bench

The shop already has --customers customers who shared their phone (one in ten also known
by Telegram id). The file is a point-of-sale export sorted by time over the last two
years, with every purchase column: most sales name the buyer's phone in the local form a
till prints (138xxxxxxxx), some give the customer_id or telegram_id instead, a share
(--unlinked) are phones nobody has linked yet (those sales wait for their customer), and a
share (--refunds) are refunds of an earlier sale a few rows before. Buyers are picked
heavy-tailed (a few regulars buy often), amounts are lognormal with cents.

Each database is emptied and migrated first (give a PostgreSQL database kept for this),
then the import runs as a child process: wall time, rows per second, its peak RSS (from
the kernel's accounting of that child) and its RSS sampled over the run, which shows
whether memory stays flat. The same file is imported a second time, which must add
nothing. The baseline, in the same run, is the bare cost of reading and parsing the file
with the csv module: the ratio shows what validation and the database add. Prints one
JSON object per database and appends them to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import csv
import itertools
import json
import os
import platform
import random
import resource
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from bench.fresh import carebot_command, fresh_database
from models import Customer, PointsEntry, Purchase
from models.database import Database
from services.import_rows import PURCHASE_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
STORES = [f"门店{n:02d}" for n in range(1, 21)]
FIRST_TELEGRAM = 7_000_000_000
SAMPLE_EVERY = 0.25


def local_phone(index: int, prefix: str) -> str:
    return f"{prefix}{index:08d}"


def generate(path: Path, args: argparse.Namespace) -> None:
    """The CSV, the same for the same arguments."""
    rng = random.Random(args.seed)
    end = datetime(2026, 11, 1, tzinfo=UTC)
    start = end - timedelta(days=730)
    step = (end - start) / args.rows
    recent: list[tuple[str, int]] = []
    refunded: set[str] = set()
    # Heavy-tailed: each customer buys at a lognormal rate, the busiest some seventy
    # times as often as the typical one.
    weights = list(itertools.accumulate(rng.lognormvariate(0, 1) for _ in range(args.customers)))
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(PURCHASE_COLUMNS)
        for n in range(args.rows):
            moment = (start + step * n + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S+08:00")
            store = rng.choice(STORES)
            if recent and rng.random() < args.refunds:
                reference, cents = recent[rng.randrange(len(recent))]
                if reference not in refunded:
                    refunded.add(reference)
                    back = cents if rng.random() < 0.7 else max(1, cents // 2)
                    amount = f"-{back // 100}.{back % 100:02d}"
                    row = [f"R{n:08d}", "", "", "", amount, "", moment, store, reference]
                    writer.writerow(row)
                    continue
            cents = max(100, int(rng.lognormvariate(4.6, 0.9) * 100))
            phone = customer_id = telegram_id = ""
            if rng.random() < args.unlinked:
                phone = local_phone(rng.randrange(args.customers * 2), "139")
            else:
                who = bisect.bisect(weights, rng.random() * weights[-1])
                pick = rng.random()
                if pick < 0.05:
                    customer_id = str(who + 1)
                elif pick < 0.08 and who % 10 == 0:
                    telegram_id = str(FIRST_TELEGRAM + who)
                else:
                    phone = local_phone(who, "138")
            currency = "CNY" if rng.random() < 0.1 else ""
            reference = f"S{n:08d}"
            amount = f"{cents // 100}.{cents % 100:02d}"
            writer.writerow(
                [reference, phone, customer_id, telegram_id, amount, currency, moment, store, ""]
            )
            recent.append((reference, cents))
            if len(recent) > 50:
                recent.pop(0)


def parse_baseline(path: Path) -> dict[str, Any]:
    """Reading and parsing the file with the csv module, nothing more."""
    started = time.perf_counter()
    rows = 0
    with path.open(encoding="utf-8-sig", newline="") as source:
        reader = csv.reader(source)
        next(reader)
        for _ in reader:
            rows += 1
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}


def prepare(url: str, customers: int) -> None:
    """An empty schema at the newest revision, and the shop's known customers."""
    asyncio.run(fresh_database(url))
    asyncio.run(seed_customers(url, customers))


async def seed_customers(url: str, customers: int) -> None:
    db = Database(url)
    try:
        now = datetime.now(UTC)
        for first in range(0, customers, 10_000):
            rows = [
                {
                    "phone": "+86" + local_phone(n, "138"),
                    "telegram_id": FIRST_TELEGRAM + n if n % 10 == 0 else None,
                    "chat_id": FIRST_TELEGRAM + n if n % 10 == 0 else None,
                    "name": f"顾客{n}",
                    "locale": "zh",
                    "marketing_opt_in": True,
                    "reachable": True,
                    "created_at": now,
                }
                for n in range(first, min(first + 10_000, customers))
            ]
            async with db.transaction() as session:
                await session.execute(insert(Customer), rows)
        if db.dialect == "postgresql":
            async with db.engine.connect() as connection:
                await connection.execute(text("ANALYZE"))
    finally:
        await db.close()


class Sampler(threading.Thread):
    """The child's resident memory every SAMPLE_EVERY seconds, from /proc."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.started = time.perf_counter()

    def run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while True:
            try:
                lines = status.read_text().splitlines()
            except (FileNotFoundError, ProcessLookupError):
                return
            for line in lines:
                if line.startswith("VmRSS:"):
                    megabytes = int(line.split()[1]) / 1024
                    self.samples.append((time.perf_counter() - self.started, megabytes))
            time.sleep(SAMPLE_EVERY)


def run_import(url: str, path: Path, workdir: Path) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": url}
    started = time.perf_counter()
    child = subprocess.Popen(
        [carebot_command(), "import", "purchases", str(path)],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sampler = Sampler(child.pid)
    sampler.start()
    # wait4 gives this child's own peak RSS, not the largest of every child so far.
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    sampler.join()
    assert child.stdout is not None and child.stderr is not None
    output = child.stdout.read().decode() + child.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"import failed:\n{output[-3000:]}")
    samples = sampler.samples
    keep = max(1, len(samples) // 40)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "rss_mb_over_time": [[round(t, 1), round(m, 1)] for t, m in samples[::keep]],
        "output": output.strip().splitlines()[-1],
    }


async def totals(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.session() as session:
            purchases = await session.scalar(select(func.count(Purchase.id)))
            waiting = await session.scalar(
                select(func.count(Purchase.id)).where(Purchase.customer_id.is_(None))
            )
            entries = await session.scalar(select(func.count(PointsEntry.id)))
            points = await session.scalar(select(func.coalesce(func.sum(PointsEntry.delta), 0)))
    finally:
        await db.close()
    return {
        "purchases": int(purchases or 0),
        "waiting_for_customer": int(waiting or 0),
        "ledger_entries": int(entries or 0),
        "points": int(points or 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--unlinked", type=float, default=0.1, help="share of unknown phones")
    parser.add_argument("--refunds", type=float, default=0.015, help="share of refund rows")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database", nargs="+", default=["sqlite"], help="sqlite, and/or PostgreSQL URLs"
    )
    parser.add_argument("--workdir", type=Path, help="keep the CSV and SQLite files here")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "imports.jsonl")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="carebot-import-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        name = f"purchases-{args.rows}-{args.customers}-{args.unlinked}-{args.refunds}-{args.seed}"
        path = workdir / f"{name}.csv"
        if not path.exists():
            generate(path, args)
        baseline = parse_baseline(path)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for database in args.database:
            url = database
            if database == "sqlite":
                sqlite_file = workdir / "import-bench.db"
                for leftover in workdir.glob("import-bench.db*"):
                    leftover.unlink()
                url = f"sqlite+aiosqlite:///{sqlite_file}"
            prepare(url, args.customers)
            first = run_import(url, path, workdir)
            after_first = asyncio.run(totals(url))
            again = run_import(url, path, workdir)
            after_again = asyncio.run(totals(url))
            rate = baseline["rows"] / first["seconds"]
            result = {
                "benchmark": "import",
                "database": "sqlite" if database == "sqlite" else "postgresql",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}",
                "rows": baseline["rows"],
                "customers": args.customers,
                "unlinked": args.unlinked,
                "refunds": args.refunds,
                "seed": args.seed,
                "rows_per_s": round(rate),
                "import": first,
                "stored": after_first,
                "reimport": again,
                "reimport_added_nothing": after_again == after_first,
                "baseline_csv_parse": baseline,
                "import_vs_parse": round(baseline["rows_per_s"] / rate, 1),
                "bench_peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
            }
            line = json.dumps(result, ensure_ascii=False)
            print(line, flush=True)
            with args.out.open("a", encoding="utf-8") as out:
                out.write(line + "\n")


if __name__ == "__main__":
    main()
