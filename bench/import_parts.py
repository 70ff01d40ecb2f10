"""Where a purchase import's time goes: `carebot import purchases` run in this process with
each step of writing a batch timed, to set beside the import's wall time.

    DATABASE_URL=sqlite+aiosqlite:///shop.db .venv/bin/python -m bench.import_parts FILE

Settings and policy are read as `carebot import` reads them, and the database is used as
it is: give one prepared as `bench.imports` prepares it (`--prepare CUSTOMERS` does).
Prints one JSON object: the wall time, the CPU time of this process and of the checking
process, the seconds spent awaiting each step of the importer's writer (the database's
work and the Python that feeds it, which take turns on the importer's one thread of Python
at a time), and what is left outside writing: reading the file, waiting for the checking
process, committing.

`--statements-only` (SQLite) times the writer's statements alone: the file's sales in the
form SQLite stores them, prepared before the clock starts, written by the import's own
INSERT and spend query in batches of the import's size with a ledger line for each sale,
in one transaction; nothing else runs. That is the database's share of the import, the
bound the rest of it stands on. With `--busy-thread`, a thread of plain Python loops
beside it, as the importer's Python would if it ran while SQLite writes.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import multiprocessing
import resource
import sqlite3
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Any

from bench.imports import prepare
from bot.cli import load
from models.database import BULK_CACHE_KIB, Database, _sqlite_pragmas
from services import imports
from services.clock import SystemClock
from services.collector import settle_after_startup
from services.import_rows import cached_phone, sqlite_moment
from services.loyalty import Loyalty

SPENT: dict[str, float] = defaultdict(float)

# What each step is, by the writer's method that awaits it; the database's own steps are
# methods of the same names on SQLite and on PostgreSQL.
STEPS = {
    (imports.Importer, "_write_sales"): "writing batches, all steps",
    (imports.Importer, "_unknown_buyers"): "buyers named by id looked up",
    (imports._SalesWriter, "_refunds"): "refunds checked and written",
    (imports._SalesWriter, "_ledger"): "ledger lines computed and written",
}
TABLE_STEPS = {
    "reserve": "ids reserved",
    "insert_sales": "sales inserted",
    "credited": "trailing-year spend read",
    "ledger": "ledger lines inserted",
}


def timed(step: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @wraps(method)
    async def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            SPENT[step] += time.perf_counter() - started

    return run


async def run_import(path: Path) -> dict[str, Any]:
    steps = dict(STEPS)
    for tables in (imports._SqliteTables, imports._PostgresTables):
        steps.update({(tables, method): step for method, step in TABLE_STEPS.items()})
    for (owner, method), step in steps.items():
        setattr(owner, method, timed(step, getattr(owner, method)))
    settings, policy = load()
    db = Database(settings.database_url)
    clock = SystemClock()
    loyalty = Loyalty(db, policy, clock)
    importer = imports.Importer(db, policy, clock, loyalty, settings.zone, settings.default_locale)
    try:
        started, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
        with path.open(encoding="utf-8-sig", newline="") as lines:
            report = await importer.purchases(lines, source=path.name)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        child = _children_cpu() - child
    finally:
        await db.close()
    if not report.applied:
        raise SystemExit(f"the import was refused: {report.errors[:3]}")
    spent = {step: round(s, 2) for step, s in sorted(SPENT.items(), key=lambda i: -i[1])}
    return {
        "rows": report.rows,
        "wall_s": round(wall, 2),
        "rows_per_s": round(report.rows / wall),
        "cpu_s_this_process": round(cpu, 2),
        "cpu_s_checking_process": round(child, 2),
        "steps_s": spent,
        "outside_writing_s": round(wall - SPENT["writing batches, all steps"], 2),
    }


def statements_only(path: Path, rows: int | None, busy: bool) -> dict[str, Any]:
    settings, policy = load()
    database = settings.database_url.partition(":///")[2]
    if not settings.database_url.startswith("sqlite") or not database:
        raise SystemExit("--statements-only measures SQLite: give a sqlite+aiosqlite:/// URL")
    created = sqlite_moment(datetime.now(UTC))
    sales = []
    with path.open(encoding="utf-8-sig", newline="") as lines:
        records = csv.DictReader(lines)
        for values in itertools.islice(records, rows):
            if values["amount"].startswith("-"):
                continue
            moment = datetime.fromisoformat(values["occurred_at"])
            phone = values["phone"]
            sales.append(
                (
                    int(values["customer_id"]) if values["customer_id"] else None,
                    int(values["telegram_id"]) if values["telegram_id"] else None,
                    cached_phone(phone, policy.phone_region) if phone else None,
                    values["reference"],
                    int(Decimal(values["amount"]) * 100),
                    policy.currency,
                    sqlite_moment(moment),
                    values["store"] or None,
                    created,
                )
            )
    connection = sqlite3.connect(database, isolation_level=None)
    _sqlite_pragmas(connection, None)
    # As the import's own connection writes (Database.bulk_transaction).
    connection.execute("PRAGMA foreign_keys=OFF")
    connection.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    if busy:
        threading.Thread(target=_loop_forever, daemon=True).start()
    spent: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    (last,) = connection.execute("SELECT COALESCE(MAX(id), 0) FROM purchases").fetchone()
    for first in range(0, len(sales), imports.BATCH):
        batch = sales[first : first + imports.BATCH]
        numbered = [(c, t, p, last + 1 + n, *rest) for n, (c, t, p, *rest) in enumerate(batch)]
        step = time.perf_counter()
        connection.executemany(imports._SQLITE_INSERT, numbered)
        spent["sales inserted"] += time.perf_counter() - step
        step = time.perf_counter()
        found = connection.execute(imports._SQLITE_CREDITED, (last + 1, last + len(batch)))
        owned = [(pid, cid) for pid, cid, _ in found.fetchall() if cid is not None]
        spent["trailing-year spend read"] += time.perf_counter() - step
        ledger = [(cid, 1, "", pid, created, "purchase", created) for pid, cid in owned]
        step = time.perf_counter()
        connection.executemany(imports._SQLITE_LEDGER, ledger)
        spent["ledger lines inserted"] += time.perf_counter() - step
        last += len(batch)
    step = time.perf_counter()
    connection.execute("COMMIT")
    spent["commit"] = time.perf_counter() - step
    wall = time.perf_counter() - started
    connection.close()
    return {
        "sales": len(sales),
        "busy_thread": busy,
        "wall_s": round(wall, 2),
        "sales_per_s": round(len(sales) / wall),
        "us_per_sale": round(wall / len(sales) * 1e6, 1),
        "steps_s": {step: round(seconds, 2) for step, seconds in spent.items()},
    }


def _loop_forever() -> None:
    count = 0
    while True:
        count += 1


def _children_cpu() -> float:
    """CPU seconds of the ended child processes, once the checking process has ended."""
    while multiprocessing.active_children():
        time.sleep(0.05)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--prepare",
        type=int,
        metavar="CUSTOMERS",
        help="first empty DATABASE_URL and give it this many customers, as bench.imports does",
    )
    parser.add_argument("--statements-only", action="store_true")
    parser.add_argument("--busy-thread", action="store_true")
    parser.add_argument("--rows", type=int, help="with --statements-only: the first ROWS rows")
    args = parser.parse_args()
    if args.prepare is not None:
        prepare(load()[0].database_url, args.prepare)
    settle_after_startup()
    if args.statements_only:
        result = statements_only(args.file, args.rows, args.busy_thread)
    else:
        result = asyncio.run(run_import(args.file))
    json.dump(result, sys.stdout, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
