"""A seeded generator of a shop's history, loaded fast into a freshly migrated database.

    .venv/bin/python -m bench.shopgen --database sqlite+aiosqlite:///shop.db --customers 1000000 \\
        --purchases 10000000
    .venv/bin/python -m bench.shopgen --database postgresql+asyncpg://user@host/db --replace

The shop (in Asia/Shanghai, the default business time zone) has three years of history up
to --now. Customers buy as the BG/NBD story goes: a personal purchase rate (gamma
distributed), a chance to drop out after each purchase (beta distributed), so a large share
has churned; 8% never bought. Purchases follow the seasons (a winter high around the Spring
Festival, a summer low, weekends, an 11 November spike) and the shop's hours. Spend is
heavy-tailed: each customer's usual basket is lognormal, a few wholesale buyers are Pareto
distributed, and each basket varies around the customer's usual one. About 1.5% of
purchases are refunded a few days later, 0.3% were recorded under a phone no customer has
linked, some customers are erased, and recent tickets carry complaints and low ratings.

The schema comes from the migrations (as `carebot migrate` makes it); rows go in through
the raw driver: executemany in large transactions on SQLite, COPY on PostgreSQL, with the
secondary indexes built after the load and statistics gathered at the end. Loading time is
printed as JSON; it is not part of any measured classification.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from numpy.typing import NDArray

from bench.fresh import fresh_database
from models.database import Database

HISTORY_DAYS = 3 * 365
NEVER_BOUGHT = 0.08
UTC_OFFSET_HOURS = 8  # Asia/Shanghai keeps no daylight saving time
REFUND_SHARE = 0.015
UNLINKED_SHARE = 0.003
ERASED_SHARE = 0.002
TICKET_SHARE = 0.02
BATCH = 100_000
DEFAULT_NOW = "2026-05-01T03:00:00+08:00"
TABLES = ("customers", "purchases", "tickets")
US_PER_DAY = 86_400_000_000

IntArray = NDArray[np.int64]


@dataclass
class Shop:
    """The generated rows, column by column (times in microseconds since 1970, UTC)."""

    customer_created: IntArray
    birthday: IntArray  # days since 1970, -1 for unknown
    erased: NDArray[np.bool_]
    opt_in: NDArray[np.bool_]
    reachable: NDArray[np.bool_]
    english: NDArray[np.bool_]
    purchase_customer: IntArray  # 0 for a sale under an unlinked phone
    purchase_phone_of: IntArray  # the customer whose phone the sale was recorded under
    purchase_at: IntArray
    amount_cents: IntArray
    refund_of: IntArray  # 0 for a sale
    ticket_customer: IntArray
    ticket_complaint: NDArray[np.bool_]
    ticket_created: IntArray
    ticket_closed: IntArray  # -1 while open
    ticket_csat: IntArray  # 0 for unrated


def _season(day: IntArray) -> NDArray[np.float64]:
    """Relative demand on each day (at most 1), in the shop's calendar."""
    days = day.astype("datetime64[D]")
    day_of_year = (days - days.astype("datetime64[Y]")).astype(np.int64)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 5 and 6 are the weekend
    demand = 0.62 + 0.18 * np.cos(2 * np.pi * (day_of_year - 30) / 365.25)
    demand += np.where(weekday >= 5, 0.12, 0.0)
    demand += np.where(np.abs(day_of_year - 314) <= 1, 0.3, 0.0)
    return np.asarray(np.minimum(demand, 1.0), dtype=np.float64)


def _purchase_days(
    rng: np.random.Generator,
    first: IntArray,
    end: int,
    rate: NDArray[np.float64],
    p: NDArray[np.float64],
) -> tuple[IntArray, IntArray]:
    """(customer index, day) of every purchase: the first one on `first`, then a seasonal
    Poisson stream at `rate` per day, cut where the customer drops out."""
    span = end - first
    counts = rng.poisson(rate * span)
    owner = np.repeat(np.arange(first.size), counts)
    day = first[owner] + np.floor(rng.random(owner.size) * span[owner]).astype(np.int64) + 1
    kept = rng.random(owner.size) < _season(day)
    owner, day = owner[kept], day[kept]
    order = np.lexsort((day, owner))
    owner, day = owner[order], day[order]
    starts = np.searchsorted(owner, np.arange(first.size))
    rank = np.arange(owner.size) - starts[owner]
    # Dropping out after each purchase with probability p: the number of purchases
    # before leaving is geometric; the first purchase is always made.
    lifetime = rng.geometric(p)
    alive = rank < lifetime[owner] - 1
    owner = np.concatenate([np.arange(first.size), owner[alive]])
    day = np.concatenate([first, day[alive]])
    return owner, day


def generate(customers: int, purchases: int, seed: int, now: datetime) -> Shop:
    rng = np.random.default_rng(seed)
    # The history ends with the last whole day before `now` in the shop's calendar.
    end_day = (now + timedelta(hours=UTC_OFFSET_HOURS)).date() - timedelta(days=1)
    end = (end_day - date(1970, 1, 1)).days
    n = customers
    bought = rng.random(n) >= NEVER_BOUGHT
    # More customers joined recently than three years ago: the shop has grown.
    first = end - np.floor(HISTORY_DAYS * rng.random(n) ** 0.8).astype(np.int64)
    # Each customer's purchase rate (relative, scaled below) and chance to leave after a
    # purchase: BG/NBD's gamma and beta mixtures.
    dropout = rng.beta(0.7, 3.5, n)
    heat = rng.gamma(0.75, 1.0, n)
    buyers = np.flatnonzero(bought)
    # The rate scale that gives the asked number of purchases, found on a sample first.
    sample = buyers[: min(buyers.size, 20_000)]
    per_buyer = purchases / max(buyers.size, 1) / (1 + REFUND_SHARE)
    low, high = 1e-4, 1.0
    for _ in range(16):
        mid = (low * high) ** 0.5
        probe = np.random.default_rng(seed + 1)
        owner, _day = _purchase_days(probe, first[sample], end, heat[sample] * mid, dropout[sample])
        if owner.size / max(sample.size, 1) < per_buyer:
            low = mid
        else:
            high = mid
    owner, day = _purchase_days(rng, first[buyers], end, heat[buyers] * mid, dropout[buyers])
    customer = buyers[owner] + 1
    # Shop hours 09:00-22:00 local, to the second.
    local_second = 9 * 3600 + rng.integers(0, 13 * 3600, customer.size)
    at = (day * 86_400 + local_second - UTC_OFFSET_HOURS * 3600) * 1_000_000
    basket = rng.lognormal(np.log(110.0), 0.85, n)
    wholesale = rng.random(n) < 0.004
    basket[wholesale] = 800.0 * (1 + rng.pareto(1.6, int(wholesale.sum())))
    amount = np.maximum(
        100, np.rint(basket[customer - 1] * rng.lognormal(0.0, 0.45, customer.size) * 100)
    ).astype(np.int64)

    refunded = np.flatnonzero(rng.random(customer.size) < REFUND_SHARE)
    refund_at = at[refunded] + rng.integers(1, 15, refunded.size) * US_PER_DAY
    now_us = int(now.timestamp()) * 1_000_000
    refunded, refund_at = refunded[refund_at <= now_us], refund_at[refund_at <= now_us]
    # Time order, as a shop's sales arrive; a refund's id comes after its sale's.
    all_customer = np.concatenate([customer, customer[refunded]])
    all_at = np.concatenate([at, refund_at])
    all_amount = np.concatenate([amount, -amount[refunded]])
    refund_source = np.concatenate([np.full(customer.size, -1), refunded])
    order = np.argsort(all_at, kind="stable")
    new_id = np.empty(order.size, dtype=np.int64)
    new_id[order] = np.arange(1, order.size + 1)
    refund_of = np.where(refund_source >= 0, new_id[np.maximum(refund_source, 0)], 0)[order]
    all_customer, all_at, all_amount = all_customer[order], all_at[order], all_amount[order]
    phone_of = all_customer.copy()
    # Only sales that were never refunded wait for their phone's owner.
    plain = refund_of == 0
    plain[refund_of[refund_of > 0] - 1] = False
    all_customer = np.where(plain & (rng.random(order.size) < UNLINKED_SHARE), 0, all_customer)

    first_seen = np.full(n, end - HISTORY_DAYS, dtype=np.int64)
    first_seen[buyers] = first[buyers]
    created = (first_seen - rng.integers(0, 60, n)) * US_PER_DAY + rng.integers(
        0, US_PER_DAY // 1_000_000, n
    ) * 1_000_000
    birthday = np.where(
        rng.random(n) < 0.7,
        (np.datetime64("1960-01-01") - np.datetime64("1970-01-01")).astype(np.int64)
        + rng.integers(0, 45 * 365, n),
        -1,
    )

    ticketed = np.flatnonzero(rng.random(n) < TICKET_SHARE)
    opened = now_us - rng.integers(1, 150 * 86_400, ticketed.size) * 1_000_000
    closed_after = rng.integers(600, 5 * 86_400, ticketed.size) * 1_000_000
    is_closed = (rng.random(ticketed.size) < 0.85) & (opened + closed_after <= now_us)
    csat = np.where(
        is_closed & (rng.random(ticketed.size) < 0.7),
        rng.choice(np.arange(1, 6), ticketed.size, p=[0.08, 0.1, 0.17, 0.3, 0.35]),
        0,
    )
    return Shop(
        customer_created=created,
        birthday=birthday,
        erased=rng.random(n) < ERASED_SHARE,
        opt_in=rng.random(n) < 0.9,
        reachable=rng.random(n) < 0.97,
        english=rng.random(n) < 0.15,
        purchase_customer=all_customer,
        purchase_phone_of=phone_of,
        purchase_at=all_at,
        amount_cents=all_amount,
        refund_of=refund_of,
        ticket_customer=ticketed + 1,
        ticket_complaint=rng.random(ticketed.size) < 0.5,
        ticket_created=opened,
        ticket_closed=np.where(is_closed, opened + closed_after, -1),
        ticket_csat=csat,
    )


def _phone(customer: int) -> str:
    return f"+86138{customer:08d}"


def _moment(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _moments(us: IntArray) -> list[datetime]:
    base = datetime(1970, 1, 1, tzinfo=UTC)
    return [base + timedelta(microseconds=v) for v in us.tolist()]


def customer_rows(shop: Shop, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    """Rows in the column order of CUSTOMER_COLUMNS; dates as date, times as aware datetimes."""
    created = _moments(shop.customer_created[start:stop])
    for k, i in enumerate(range(start, stop)):
        cid = i + 1
        erased = bool(shop.erased[i])
        birthday = int(shop.birthday[i])
        yield (
            cid,
            None if erased else 1_000_000_000 + cid,
            None if erased else 1_000_000_000 + cid,
            None if erased else f"客户{cid}",
            None if erased else _phone(cid),
            None if erased or birthday < 0 else date(1970, 1, 1) + timedelta(days=birthday),
            "en" if shop.english[i] else "zh",
            None if erased else ("上海", "北京", "广州", "深圳", "成都", "杭州")[cid % 6],
            bool(shop.opt_in[i]) and not erased,
            bool(shop.reachable[i]),
            created[k],
            created[k] + timedelta(days=400) if erased else None,
        )


CUSTOMER_COLUMNS = (
    "id",
    "telegram_id",
    "chat_id",
    "name",
    "phone",
    "birthday",
    "locale",
    "region",
    "marketing_opt_in",
    "reachable",
    "created_at",
    "erased_at",
)
PURCHASE_COLUMNS = (
    "id",
    "customer_id",
    "phone",
    "reference",
    "amount",
    "currency",
    "occurred_at",
    "store",
    "channel",
    "refund_of_id",
    "created_at",
)
TICKET_COLUMNS = (
    "id",
    "customer_id",
    "kind",
    "status",
    "created_at",
    "first_response_at",
    "closed_at",
    "csat",
    "escalation_level",
)


def purchase_rows(shop: Shop, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    at = _moments(shop.purchase_at[start:stop])
    customers = shop.purchase_customer[start:stop].tolist()
    phones = shop.purchase_phone_of[start:stop].tolist()
    amounts = shop.amount_cents[start:stop].tolist()
    refunds = shop.refund_of[start:stop].tolist()
    for k in range(stop - start):
        pid = start + k + 1
        refund = refunds[k]
        yield (
            pid,
            customers[k] or None,
            _phone(phones[k]),
            f"R-{pid}" if refund else f"S-{pid}",
            amounts[k],
            "CNY",
            at[k],
            ("flagship", "mall", "airport", None)[pid % 4],
            "online" if pid % 3 == 0 else "store",
            refund or None,
            at[k],
        )


def ticket_rows(shop: Shop) -> Iterator[tuple[Any, ...]]:
    for k in range(shop.ticket_customer.size):
        created = _moment(int(shop.ticket_created[k]))
        closed_us = int(shop.ticket_closed[k])
        closed = _moment(closed_us) if closed_us >= 0 else None
        csat = int(shop.ticket_csat[k])
        yield (
            k + 1,
            int(shop.ticket_customer[k]),
            "complaint" if shop.ticket_complaint[k] else "question",
            "closed" if closed else "open",
            created,
            closed,
            closed,
            csat or None,
            0,
        )


def _chunks(total: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, BATCH):
        yield start, min(total, start + BATCH)


def _sqlite_value(value: Any) -> Any:
    # The text SQLAlchemy writes for a UTC time on SQLite, so stored rows compare the same.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _sqlite_rows(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        yield tuple(_sqlite_value(v) for v in row)


def _insert(table: str, columns: Sequence[str], placeholder: str) -> str:
    marks = ", ".join(placeholder.format(i + 1) for i in range(len(columns)))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def load_sqlite(path: Path, shop: Shop) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        # A lost load is simply generated again, so the load does not wait for the disk.
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            f" AND tbl_name IN ({', '.join('?' * len(TABLES))})",
            TABLES,
        ).fetchall()
        for name, _sql in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        plan = [
            ("customers", CUSTOMER_COLUMNS, shop.birthday.size, customer_rows),
            ("purchases", PURCHASE_COLUMNS, shop.purchase_at.size, purchase_rows),
        ]
        for table, columns, total, rows in plan:
            statement = _insert(table, columns, "?")
            for start, stop in _chunks(total):
                connection.execute("BEGIN")
                connection.executemany(statement, _sqlite_rows(rows(shop, start, stop)))
                connection.execute("COMMIT")
        connection.execute("BEGIN")
        connection.executemany(
            _insert("tickets", TICKET_COLUMNS, "?"), _sqlite_rows(ticket_rows(shop))
        )
        connection.execute("COMMIT")
        for _name, sql in indexes:
            connection.execute(sql)
        connection.execute("ANALYZE")
    finally:
        connection.close()


async def load_postgresql(dsn: str, shop: Shop) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        indexes = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1::text[])"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            list(TABLES),
        )
        for index in indexes:
            await connection.execute(f'DROP INDEX "{index["indexname"]}"')
        # The generator writes consistent keys; checking each of ten million foreign keys
        # row by row would only slow the load.
        await connection.execute("SET session_replication_role = replica")
        plan = [
            ("customers", CUSTOMER_COLUMNS, shop.birthday.size, customer_rows),
            ("purchases", PURCHASE_COLUMNS, shop.purchase_at.size, purchase_rows),
        ]
        for table, columns, total, rows in plan:
            for start, stop in _chunks(total):
                await connection.copy_records_to_table(
                    table, records=rows(shop, start, stop), columns=list(columns)
                )
        await connection.copy_records_to_table(
            "tickets", records=ticket_rows(shop), columns=list(TICKET_COLUMNS)
        )
        await connection.execute("SET session_replication_role = DEFAULT")
        for index in indexes:
            await connection.execute(index["indexdef"])
        for table in TABLES:
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT coalesce(max(id), 1) FROM {table}))"
            )
        # As autovacuum would have by the night of a classification: statistics, and the
        # visibility map that lets PostgreSQL answer from an index alone.
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


async def _is_empty(db: Database) -> bool:
    from sqlalchemy import inspect

    async with db.engine.connect() as connection:
        names = await connection.run_sync(lambda c: inspect(c).get_table_names())
    return not names


def remove_sqlite(url: str, replace: bool) -> None:
    path = sqlite_path(url)
    if path.exists() and not replace:
        raise SystemExit(f"{path} exists; pass --replace to generate it again")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def prepare(url: str, replace: bool) -> None:
    """An empty database at the newest migration (a SQLite file is removed beforehand)."""
    if not url.startswith("sqlite"):
        db = Database(url)
        try:
            if not await _is_empty(db) and not replace:
                raise SystemExit("the database has tables; pass --replace to empty it")
        finally:
            await db.close()
    await fresh_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database",
        required=True,
        help="a DATABASE_URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://...",
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--purchases", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--now", default=DEFAULT_NOW, help="the end of the history, ISO 8601")
    parser.add_argument("--replace", action="store_true", help="empty an existing database")
    args = parser.parse_args()
    now = datetime.fromisoformat(args.now).astimezone(UTC)

    started = time.perf_counter()
    shop = generate(args.customers, args.purchases, args.seed, now)
    generated = time.perf_counter()
    if args.database.startswith("sqlite"):
        remove_sqlite(args.database, args.replace)
    asyncio.run(prepare(args.database, args.replace))
    if args.database.startswith("sqlite"):
        load_sqlite(sqlite_path(args.database), shop)
    else:
        asyncio.run(load_postgresql(asyncpg_dsn(args.database), shop))
    loaded = time.perf_counter()
    print(
        json.dumps(
            {
                "database": args.database.split(":", 1)[0],
                "customers": args.customers,
                "purchases": int(shop.purchase_at.size),
                "refunds": int((shop.refund_of > 0).sum()),
                "tickets": int(shop.ticket_customer.size),
                "seed": args.seed,
                "now": now.isoformat(),
                "generate_seconds": round(generated - started, 1),
                "load_seconds": round(loaded - generated, 1),
                "load_rows_per_second": round(
                    (args.customers + shop.purchase_at.size) / (loaded - generated)
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
