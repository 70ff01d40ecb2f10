"""Purchase imports written batch by batch: the purchases and the ledger are those that
recording the rows one by one would give, whatever the batch boundaries, with refunds,
repeated references and buyers named every way; refused refunds are reported by line."""

from __future__ import annotations

import io
import os
import random
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NoReturn
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from models import Customer, PointsEntry, Purchase
from models.database import Database
from services import imports
from services.clock import FrozenClock
from services.customers import Customers, TelegramProfile
from services.import_rows import RowError, sqlite_moment
from services.imports import Importer
from services.loyalty import Loyalty, Sale
from services.policy import Policy

ZONE = ZoneInfo("Asia/Shanghai")
HEADER = "reference,phone,customer_id,telegram_id,amount,occurred_at,refund_of"


@pytest.fixture
def policy(policy: Policy) -> Policy:
    """Points that expire a year after the sale, so that when is compared too."""
    points = policy.points.model_copy(update={"expiry_months": 12})
    return policy.model_copy(update={"points": points})


@pytest.fixture
def loyalty(db: Database, policy: Policy, clock: FrozenClock) -> Loyalty:
    return Loyalty(db, policy, clock)


@pytest.fixture
def importer(db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty) -> Importer:
    return Importer(db, policy, clock, loyalty, ZONE)


async def shop(db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty) -> list[int]:
    """Four customers: two who shared a phone, two known only by Telegram."""
    ids = []
    for n in range(4):
        made, _ = await Customers(db, policy, clock, loyalty).touch(
            TelegramProfile(telegram_id=500 + n, chat_id=500 + n, first_name=f"C{n}")
        )
        ids.append(made.id)
    async with db.transaction() as session:
        for n in (0, 1):
            customer = await session.get(Customer, ids[n])
            assert customer is not None
            customer.phone = f"+86138001380{n:02d}"
    return ids


def random_file(ids: list[int], start: datetime, rows: int, seed: int) -> list[list[str]]:
    """Sales naming their buyer by phone, customer id or Telegram id, phones nobody has
    linked, references repeated, and refunds (whole or part) of earlier sales."""
    rng = random.Random(seed)
    lines: list[list[str]] = []
    sales: list[tuple[str, Decimal]] = []
    for n in range(rows):
        moment = (start + timedelta(days=n * 3, minutes=rng.randrange(600))).isoformat()
        if sales and rng.random() < 0.2:
            reference, amount = sales.pop(rng.randrange(len(sales)))
            back = -amount if rng.random() < 0.5 else -(amount / 3).quantize(Decimal("0.01"))
            lines.append([f"R-{n}", "", "", "", str(back), moment, reference])
            continue
        if sales and rng.random() < 0.05:
            reference, _ = rng.choice(sales)
            # Known already: this line changes nothing.
            lines.append([reference, "", str(ids[0]), "", "10", moment, ""])
            continue
        who = rng.randrange(6)
        phone = customer_id = telegram = ""
        if who < 2:
            phone = f"1380013800{who}"
        elif who < 4:
            telegram = str(500 + who)
        elif who == 4:
            customer_id = str(ids[rng.randrange(4)])
        else:
            phone = "13900139000"
        amount = Decimal(rng.randrange(1000, 90000)) / 100
        lines.append([f"S-{n}", phone, customer_id, telegram, str(amount), moment, ""])
        sales.append((f"S-{n}", amount))
    return lines


async def stored(db: Database) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    async with db.session() as session:
        purchases = await session.execute(
            select(
                Purchase.reference,
                Purchase.customer_id,
                Purchase.phone,
                Purchase.amount,
                Purchase.refund_of_id.is_(None),
            ).order_by(Purchase.reference)
        )
        entries = await session.execute(
            select(
                PointsEntry.reference,
                PointsEntry.customer_id,
                PointsEntry.delta,
                PointsEntry.reason,
                PointsEntry.expires_at,
            ).order_by(PointsEntry.reference)
        )
        return [tuple(p) for p in purchases], [tuple(e) for e in entries]


def _die(*_: object) -> NoReturn:
    """In the child process: it ends at once, as when the system kills it for memory."""
    os._exit(9)


@pytest.mark.parametrize(
    ("batch_size", "parsing"),
    [(1, "here"), (7, "here"), (500, "here"), (7, "child"), (7, "child dies")],
)
async def test_batches_write_what_recording_one_by_one_writes(
    db: Database,
    policy: Policy,
    clock: FrozenClock,
    loyalty: Loyalty,
    importer: Importer,
    batch_size: int,
    parsing: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if parsing != "here":
        # Every batch after the first parsed by the child process.
        monkeypatch.setattr(imports, "PARSE_APART_FROM", 0)
    if parsing == "child dies":
        monkeypatch.setattr(imports, "parse_plainly", _die)
    ids = await shop(db, policy, clock, loyalty)
    start = clock.now() - timedelta(days=400)
    lines = random_file(ids, start, 120, seed=batch_size)
    text = "\n".join([HEADER, *(",".join(line) for line in lines)]) + "\n"
    report = await importer.purchases(io.StringIO(text, newline=""), batch_size=batch_size)
    assert report.applied, report.errors
    imported = await stored(db)
    assert any(reason == "refund" for *_, reason, _ in imported[1])
    assert all(expires is not None for *_, reason, expires in imported[1] if reason == "purchase")

    async with db.transaction() as session:
        for table in (PointsEntry, Purchase):
            await session.execute(delete(table))
    created = points = 0
    for reference, phone, customer_id, telegram, amount, moment, refund_of in lines:
        result = await loyalty.record_purchase(
            Sale(
                reference=reference,
                amount=Decimal(amount),
                occurred_at=datetime.fromisoformat(moment),
                channel="import",
                phone=phone or None,
                customer_id=int(customer_id) if customer_id else None,
                telegram_id=int(telegram) if telegram else None,
                refund_of=refund_of or None,
            )
        )
        created += result.created
        points += result.points_awarded if result.created else 0
    assert await stored(db) == imported
    assert (report.created, report.unchanged, report.points) == (
        created,
        len(lines) - created,
        points,
    )


async def test_a_reference_twice_in_one_batch_and_across_batches_is_recorded_once(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty, importer: Importer
) -> None:
    ids = await shop(db, policy, clock, loyalty)
    text = f"""{HEADER}
A,,{ids[0]},,100,2026-04-01,
A,,{ids[1]},,900,2026-04-01,
B,,{ids[1]},,50,2026-04-02,
A,,{ids[1]},,70,2026-04-03,
"""
    report = await importer.purchases(io.StringIO(text, newline=""), batch_size=3)
    assert report.applied and (report.created, report.unchanged, report.points) == (2, 2, 150)
    async with db.session() as session:
        first = await session.scalar(select(Purchase).where(Purchase.reference == "A"))
    assert first is not None and first.customer_id == ids[0] and first.amount == 100


async def test_refused_refunds_are_reported_by_line_and_nothing_is_written(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty, importer: Importer
) -> None:
    ids = await shop(db, policy, clock, loyalty)
    text = f"""{HEADER}
R-0,,,,-10,2026-04-01,S-1
S-1,,{ids[0]},,100,2026-04-02,
R-1,,,,-60,2026-04-03,S-1
R-2,,,,-60,2026-04-04,S-1
R-3,,{ids[1]},,-10,2026-04-05,S-1
R-4,,,,-10,2026-04-06,R-1
"""
    report = await importer.purchases(io.StringIO(text, newline=""), batch_size=4)
    assert not report.applied
    assert report.errors == [
        RowError(2, "refund_of", "no sale with reference 'S-1'"),
        RowError(5, "amount", "refunds would exceed the original sale"),
        RowError(6, "refund_of", "that sale belongs to another customer"),
        RowError(7, "refund_of", "no sale with reference 'R-1'"),
    ]
    assert await stored(db) == ([], [])


async def test_rows_parsed_in_a_child_process_are_refused_as_rows_parsed_here(
    db: Database,
    policy: Policy,
    clock: FrozenClock,
    loyalty: Loyalty,
    importer: Importer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = await shop(db, policy, clock, loyalty)
    faults = [
        ["S-{n}", "12345", "", "", "10", "2026-04-01", ""],
        ["S-{n}", "", str(ids[0]), "", "1.005", "2026-04-01", ""],
        ["S-{n}", "", str(ids[0]), "", "10", "2031-01-01", ""],
        ["S-{n}", "", "", "", "10", "2026-04-01", ""],
        ["S-{n}", "", "", "7x", "10", "yesterday", ""],
    ]
    rows = [
        [v.format(n=n) for v in faults[n % 7]]
        if n % 7 < len(faults)
        else [f"S-{n}", "", str(ids[1]), "", "20", "2026-04-02", ""]
        for n in range(60)
    ]
    text = "\n".join([HEADER, *(",".join(row) for row in rows)]) + "\n"
    seen_here: list[int] = []
    here = await importer.purchases(
        io.StringIO(text, newline=""), batch_size=4, progress=seen_here.append
    )
    monkeypatch.setattr(imports, "PARSE_APART_FROM", 0)
    seen_apart: list[int] = []
    apart = await importer.purchases(
        io.StringIO(text, newline=""), batch_size=4, progress=seen_apart.append
    )
    assert not here.applied and not apart.applied
    assert here.error_count == apart.error_count == 52
    assert apart.errors == here.errors
    assert [e.column for e in here.errors[:6]] == [
        "phone",
        "amount",
        "occurred_at",
        "phone",
        "occurred_at",
        "telegram_id",
    ]
    assert seen_apart == seen_here == list(range(4, 61, 4))
    assert await stored(db) == ([], [])


def test_times_are_written_to_sqlite_as_sqlalchemy_writes_them() -> None:
    dialect = sqlite.dialect()
    column = Purchase.__table__.c.occurred_at
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    for moment in (
        datetime(2026, 4, 1, 10, 0, tzinfo=ZONE),
        datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    ):
        assert sqlite_moment(moment) == process(moment)


async def test_a_row_naming_its_buyer_twice_is_refused_at_the_second_name(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty, importer: Importer
) -> None:
    ids = await shop(db, policy, clock, loyalty)
    text = f"""{HEADER}
S-1,+8613800138000,{ids[0]},,10,2026-04-01,
S-2,+8613800138000,,500,10,2026-04-01,
S-3,,{ids[0]},500,10,2026-04-01,
S-4,+8613800138000,{ids[0]},500,10,2026-04-01,
S-5,,,500,10,2026-04-01,
"""
    report = await importer.purchases(io.StringIO(text, newline=""))
    twice = "give only one of phone, customer_id, telegram_id"
    assert report.errors == [
        RowError(2, "customer_id", twice),
        RowError(3, "telegram_id", twice),
        RowError(4, "telegram_id", twice),
        RowError(5, "customer_id", twice),
    ]
    assert await stored(db) == ([], [])


async def test_every_connection_checks_foreign_keys_after_an_import(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty, importer: Importer
) -> None:
    """On SQLite an import writes without looking up each row's parents, with a page cache
    of its own; the connection it used is as before afterwards, whether the file was
    applied or refused."""
    ids = await shop(db, policy, clock, loyalty)
    good = f"{HEADER}\nS-1,,{ids[0]},,10,2026-04-01,\n"
    bad = f"{HEADER}\nS-2,,{ids[0]},,10,2026-04-01,\nS-3,,{ids[0]},,ten,2026-04-01,\n"
    assert (await importer.purchases(io.StringIO(good, newline=""))).applied
    assert not (await importer.purchases(io.StringIO(bad, newline=""))).applied
    pool = db.engine.sync_engine.pool
    async with AsyncExitStack() as stack:
        # Every connection the pool holds, the import's among them, lent at once.
        lent = [
            await stack.enter_async_context(db.engine.connect())
            for _ in range(max(1, pool.checkedin()))  # type: ignore[attr-defined]
        ]
        for connection in lent:
            if db.dialect == "sqlite":
                # And SQLite's own page cache again, not the import's.
                size = await connection.exec_driver_sql("PRAGMA cache_size")
                assert size.scalar_one() == -2000
                await connection.rollback()
            with pytest.raises(IntegrityError):
                async with connection.begin():
                    await connection.execute(
                        insert(Purchase).values(
                            customer_id=10_000_000,
                            reference=f"orphan-{id(connection)}",
                            amount=Decimal(1),
                            currency="CNY",
                            occurred_at=clock.now(),
                            channel="import",
                            created_at=clock.now(),
                        )
                    )
