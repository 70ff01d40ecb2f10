"""CSV imports: whole or nothing, a line-numbered report, points as if recorded one by one."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select

from models import AuditEntry, Customer, PointsEntry, Purchase
from models.database import Database
from services.clock import FrozenClock
from services.customers import Customers, TelegramProfile
from services.import_rows import RowError
from services.imports import Importer
from services.loyalty import Loyalty, Sale
from services.policy import Policy

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def loyalty(db: Database, policy: Policy, clock: FrozenClock) -> Loyalty:
    return Loyalty(db, policy, clock)


@pytest.fixture
def importer(db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty) -> Importer:
    return Importer(db, policy, clock, loyalty, ZONE)


def lines(text: str) -> io.StringIO:
    return io.StringIO(text.lstrip("\n"), newline="")


async def customer(db: Database, policy: Policy, clock: FrozenClock, tid: int) -> int:
    made, _ = await Customers(db, policy, clock, Loyalty(db, policy, clock)).touch(
        TelegramProfile(telegram_id=tid, chat_id=tid, first_name=f"C{tid}")
    )
    return made.id


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.session() as session:
        purchases = await session.scalar(select(func.count(Purchase.id)))
        entries = await session.scalar(select(func.count(PointsEntry.id)))
        points = await session.scalar(select(func.coalesce(func.sum(PointsEntry.delta), 0)))
    return int(purchases or 0), int(entries or 0), int(points or 0)


async def test_a_clean_file_is_applied_and_a_second_import_adds_nothing(
    db: Database, policy: Policy, clock: FrozenClock, importer: Importer
) -> None:
    cid = await customer(db, policy, clock, 11)
    text = f"""
reference,customer_id,phone,amount,currency,occurred_at,store
S-1,{cid},,120.50,CNY,2026-04-01T10:00:00+08:00,Main
S-2,,13800138000,99,,2026-04-02 09:30,
S-3,{cid},,30,cny,2026-04-03,Main
"""
    report = await importer.purchases(lines(text), actor=9001, source="sales.csv")
    assert report.applied and report.errors == []
    assert (report.rows, report.created, report.unchanged, report.points) == (3, 3, 0, 150)
    assert await counts(db) == (3, 2, 150)
    again = await importer.purchases(lines(text))
    assert again.applied and (again.created, again.unchanged, again.points) == (0, 3, 0)
    assert await counts(db) == (3, 2, 150)
    async with db.session() as session:
        waiting = await session.scalar(select(Purchase).where(Purchase.reference == "S-2"))
        audit = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "import.purchases")
        )
    assert waiting is not None and waiting.customer_id is None and waiting.phone == "+8613800138000"
    assert audit is not None and audit.actor_telegram_id == 9001 and audit.target_id == "sales.csv"


async def test_one_bad_row_rejects_the_whole_file_with_line_numbers(
    db: Database, policy: Policy, clock: FrozenClock, importer: Importer
) -> None:
    cid = await customer(db, policy, clock, 12)
    text = f"""
reference,customer_id,phone,amount,occurred_at
OK-1,{cid},,10,2026-04-01
BAD-1,{cid},,ten,2026-04-01
BAD-2,,12345,10,2026-04-01

BAD-3,999999,,10,2026-04-01
BAD-4,{cid},,10,2031-01-01
OK-2,{cid},,-5,2026-04-02
"""
    report = await importer.purchases(lines(text), batch_size=2)
    assert not report.applied
    assert report.errors == [
        RowError(3, "amount", "is not a number like 199.00"),
        RowError(4, "phone", "is not a valid phone number"),
        RowError(6, "customer_id", "no customer 999999"),
        RowError(7, "occurred_at", "is in the future"),
        RowError(8, "refund_of", "a negative amount is a refund: name the sale"),
    ]
    assert await counts(db) == (0, 0, 0)


async def test_a_bad_header_names_the_columns(importer: Importer) -> None:
    report = await importer.purchases(lines("ref,amount,phone\nX,1,13800138000\n"))
    assert [(e.line, e.column) for e in report.errors] == [(1, "ref"), (1, "reference")]
    assert "the columns are reference, phone" in report.errors[0].reason


async def test_points_match_recording_the_same_sales_one_by_one(
    db: Database, policy: Policy, clock: FrozenClock, importer: Importer, loyalty: Loyalty
) -> None:
    """Tiers rise within the file (spend over 300 and 1000), a refund takes its share
    back, and the result is the ledger the API would have written in file order."""
    first, second = await customer(db, policy, clock, 21), await customer(db, policy, clock, 22)
    start = clock.now() - timedelta(days=200)
    sales = [
        ("A-1", first, "250", 0),
        ("A-2", first, "100", 1),
        ("A-3", first, "700", 2),
        ("A-4", first, "200", 3),
        ("B-1", second, "999.99", 1),
        ("A-5", first, "-50", 4),
        ("A-0", first, "80", -1),
        ("B-2", second, "10", 5),
    ]
    rows = ["reference,customer_id,amount,occurred_at,refund_of"]
    for reference, who, amount, day in sales:
        moment = (start + timedelta(days=day)).isoformat()
        refund = "A-3" if amount.startswith("-") else ""
        rows.append(f"{reference},{who},{amount},{moment},{refund}")
    report = await importer.purchases(lines("\n".join(rows) + "\n"), batch_size=3)
    assert report.applied, report.errors
    imported = await ledger(db)

    async with db.transaction() as session:
        for table in (PointsEntry, Purchase):
            await session.execute(delete(table))
    for reference, who, amount, day in sales:
        refunds = "A-3" if amount.startswith("-") else None
        await loyalty.record_purchase(
            Sale(
                reference=reference,
                amount=Decimal(amount),
                occurred_at=start + timedelta(days=day),
                channel="api",
                customer_id=None if refunds else who,
                refund_of=refunds,
            )
        )
    assert imported == await ledger(db)
    assert imported["A-4"] == 300  # 200 at the key tier's 1.5 once 1050 was spent


async def ledger(db: Database) -> dict[str, int]:
    async with db.session() as session:
        rows = await session.execute(select(PointsEntry.reference, PointsEntry.delta))
        return {str(ref): delta for ref, delta in rows}


async def test_customers_import_fills_blanks_and_never_opts_anyone_in(
    db: Database, policy: Policy, clock: FrozenClock, importer: Importer
) -> None:
    cid = await customer(db, policy, clock, 31)
    async with db.transaction() as session:
        known = await session.get(Customer, cid)
        assert known is not None
        known.phone = "+8613800138031"
        known.marketing_opt_in = False
    text = """
phone,name,birthday,locale,region,marketing_opt_in
13800138031,Imported Name,1990-05-31,en,Shanghai,true
13900139000,新客户,1988-02-29,zh,北京,no
13900139000,,,,Beijing,
"""
    report = await importer.customers(lines(text), actor=9001)
    assert report.applied, report.errors
    assert (report.created, report.updated, report.unchanged) == (1, 1, 1)
    async with db.session() as session:
        mine = await session.get(Customer, cid)
        new = await session.scalar(select(Customer).where(Customer.phone == "+8613900139000"))
    assert mine is not None and new is not None
    assert mine.name == "C31" and mine.region == "Shanghai" and not mine.marketing_opt_in
    assert str(mine.birthday) == "1990-05-31"
    assert (new.name, new.region, new.marketing_opt_in, new.telegram_id) == (
        "新客户",
        "北京",
        False,
        None,
    )
    again = await importer.customers(lines(text))
    assert (again.created, again.updated) == (0, 0)


async def test_customers_import_reports_bad_values(importer: Importer) -> None:
    text = "phone,birthday,locale,marketing_opt_in\n123,1990-02-30,fr,maybe\n"
    report = await importer.customers(lines(text))
    assert not report.applied
    assert [e.column for e in report.errors] == ["phone", "birthday", "locale", "marketing_opt_in"]
    assert all(e.line == 2 for e in report.errors)


async def test_line_numbers_count_quoted_newlines_and_progress_follows_batches(
    importer: Importer,
) -> None:
    text = 'reference,phone,amount,store\nA,13800138000,1,"two\nlines"\n\nB,bad,1,\nC,,1,\n'
    seen: list[int] = []
    report = await importer.purchases(lines(text), progress=seen.append, batch_size=1)
    assert report.errors == [
        RowError(5, "phone", "is not a valid phone number"),
        RowError(6, "phone", "give one of phone, customer_id, telegram_id"),
    ]
    assert seen == [1, 2, 3] and report.rows == 3


def test_every_reason_is_said_in_every_language() -> None:
    from bot.rendering import Renderer
    from services.import_rows import REASONS, ImportReport

    renderer = Renderer(timezone=ZONE)
    params = {"limit": 1, "currency": "CNY", "id": 1, "locales": "zh", "columns": "a"}
    params |= {"found": 1, "expected": 2, "detail": "x", "reference": "S-1"}
    for code in REASONS:
        report = ImportReport("purchases")
        report.reject(2, "amount", code, **params)
        for locale in ("zh", "en"):
            text = renderer.render(
                "staff_import_rejected", locale, report=report, shown=report.errors
            )
            assert report.errors[0].reason not in text or locale == "en", (code, locale)
            assert "amount" in text
