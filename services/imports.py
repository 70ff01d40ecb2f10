"""CSV imports from a shop's other systems: purchases, and its existing customer list.

A file is read as a stream and applied in batches inside one transaction: every row is
validated, and if any row is bad nothing at all is applied and the report lists the bad
rows by line and column. Memory is bounded by the batch, never by the file.

Purchases follow the same rules as `Loyalty.record_purchase` taken one row after another
in file order: a known reference changes nothing (so re-importing a file adds nothing), a
sale earns points at the tier its customer held just before it, a refund (negative
amount with `refund_of`) takes back its share, a phone nobody has linked yet keeps the
sale waiting for them. Imports are history: they send no messages to customers.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from models import Customer, PointsEntry, Purchase
from models.database import Database
from services.audit import record_audit
from services.clock import Clock
from services.collector import collector_paused, settle_after_startup
from services.import_rows import (
    BUYER_COLUMNS,
    PURCHASE_COLUMNS,
    Batch,
    Fields,
    ImportReport,
    Parsed,
    Rows,
    Sale,
    SaleParser,
    cached_phone,
    parse_plainly,
    sqlite_moment,
)
from services.loyalty import (
    TRAILING,
    Loyalty,
    RefundTarget,
    SaleError,
    check_refund,
    points_for,
    refund_share,
)
from services.phones import InvalidPhone
from services.policy import LOCALES, Policy

CUSTOMER_COLUMNS = ("phone", "name", "birthday", "locale", "region", "marketing_opt_in")
BATCH = 10_000
# Below this many rows the whole file is parsed here: a child process takes under half a
# second to start, about as long as parsing 20,000 rows.
PARSE_APART_FROM = 20_000
_TRUE = {"true", "1", "yes", "y", "是", "t"}
_FALSE = {"false", "0", "no", "n", "否", "f"}

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
_Item = TypeVar("_Item")


class _Rejected(Exception):
    """Raised inside the transaction so that a file with bad rows leaves no trace."""


@dataclass(frozen=True)
class _Person:
    line: int
    phone: str
    name: str | None
    birthday: date | None
    locale: str | None
    region: str | None
    marketing: bool | None


class Importer:
    def __init__(
        self,
        db: Database,
        policy: Policy,
        clock: Clock,
        loyalty: Loyalty,
        zone: ZoneInfo,
        default_locale: str = "zh",
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.loyalty = loyalty
        self.zone = zone
        self.default_locale = default_locale

    # --- purchases -------------------------------------------------------------------------

    async def purchases(
        self,
        lines: Iterable[str],
        *,
        actor: int | None = None,
        source: str = "",
        progress: Progress | None = None,
        batch_size: int = BATCH,
    ) -> ImportReport:
        report = ImportReport("purchases")
        rows = Rows(lines, report)
        if not rows.header(PURCHASE_COLUMNS, required=("reference", "amount")):
            return report
        if not any(c in rows.columns for c in BUYER_COLUMNS):
            report.reject(1, "", "buyer_column")
            return report
        parser = SaleParser(
            Fields(rows.columns),
            self.policy.currency,
            self.policy.phone_region,
            self.zone,
            self.policy.points.expiry_months,
        )

        async def write(session: AsyncSession, sales: list[Sale]) -> None:
            await self._write_sales(session, sales, report)

        return await self._apply(
            report,
            self._parsed(parser, rows.records(batch_size), report),
            write,
            progress,
            actor=actor,
            source=source,
            summary=lambda: {
                "rows": report.rows,
                "created": report.created,
                "known": report.unchanged,
                "points": report.points,
            },
        )

    async def _parsed(
        self, parser: SaleParser, batches: Iterator[Batch], report: ImportReport
    ) -> AsyncGenerator[tuple[list[Sale], int]]:
        """Each batch of records as sales, with the count of rows through it; the rows and
        what was refused taken into the report. Once PARSE_APART_FROM rows are in, a child
        process checks the next batch while this one is written: checking the rows and
        writing them cost about the same, and a process gets a core of its own where
        threads of one would take turns."""

        def here(records: Batch, now: datetime) -> list[Sale]:
            sales, faults = parser.parse(records, now)
            report.absorb(faults)
            return sales

        for records in batches:
            yield here(records, self.clock.now()), report.rows
            if report.rows >= PARSE_APART_FROM:
                break
        else:
            return
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=settle_after_startup
        ) as child:

            def submit(records: Batch) -> _Pending:
                now = self.clock.now()
                try:
                    future = loop.run_in_executor(child, parse_plainly, parser, records, now)
                except BrokenProcessPool:
                    return _Pending(records, now, None)
                return _Pending(records, now, future)

            async def take(pending: _Pending) -> list[Sale]:
                if pending.parsed is not None:
                    try:
                        return _received(await pending.parsed, report)
                    except BrokenProcessPool:
                        # The child died (the system short of memory, say): the rest is
                        # checked here, slower but the same.
                        log.warning("import: the checking process died, checking here")
                return here(pending.records, pending.now)

            try:
                last = None
                for records in batches:
                    following = submit(records)
                    if last is not None:
                        yield await take(last), report.rows
                    last = following
                if last is not None:
                    yield await take(last), report.rows
            finally:
                # Stopped early (cancelled, a write failed): nothing more is wanted of it.
                child.shutdown(wait=False, cancel_futures=True)

    async def _apply(
        self,
        report: ImportReport,
        items: AsyncGenerator[tuple[_Item, int]],
        write: Callable[[AsyncSession, _Item], Awaitable[None]],
        progress: Progress | None,
        *,
        actor: int | None,
        source: str,
        summary: Callable[[], dict[str, int]],
    ) -> ImportReport:
        """Every batch written in one transaction, rolled back whole if any row was refused."""
        try:
            with collector_paused():
                async with (
                    self.db.bulk_transaction() as session,
                    aclosing(items) as batches,
                ):
                    statistics = _Statistics(self.db.dialect, _WRITTEN[report.kind])
                    reported = 0
                    async for batch, rows_read in batches:
                        await write(session, batch)
                        # Rows loaded through the session stay in its memory until it ends.
                        session.expunge_all()
                        await statistics.refresh(session, report.created)
                        # A batch of blank lines only has moved nothing.
                        if progress is not None and rows_read > reported:
                            progress(rows_read)
                            reported = rows_read
                    if report.error_count:
                        # A batch's rows are checked, then written: in file order for the reader.
                        report.errors.sort(key=lambda error: error.line)
                        raise _Rejected
                    record_audit(
                        session,
                        at=self.clock.now(),
                        actor=actor,
                        action=f"import.{report.kind}",
                        target_type="file",
                        target_id=source or None,
                        after=summary(),
                    )
        except _Rejected:
            return report
        report.applied = True
        return report

    async def _write_sales(
        self, session: AsyncSession, sales: list[Sale], report: ImportReport
    ) -> None:
        failed = await self._unknown_buyers(session, sales, report)
        writer = await _SalesWriter.open(session, self)
        await writer.write([s for s in sales if s.line not in failed], report)

    async def _unknown_buyers(
        self, session: AsyncSession, sales: list[Sale], report: ImportReport
    ) -> set[int]:
        """The lines naming a customer id or Telegram id that nobody has; phones need no
        customer, their sales wait for one."""
        ids = {s.customer_id for s in sales if s.customer_id is not None}
        telegrams = {s.telegram_id for s in sales if s.telegram_id is not None}
        found_ids: set[int] = set()
        found_telegrams: set[int | None] = set()
        if ids:
            found_ids = set(await session.scalars(select(Customer.id).where(Customer.id.in_(ids))))
        if telegrams:
            found_telegrams = set(
                await session.scalars(
                    select(Customer.telegram_id).where(Customer.telegram_id.in_(telegrams))
                )
            )
        failed: set[int] = set()
        for sale in sales:
            if sale.customer_id is not None and sale.customer_id not in found_ids:
                report.reject(sale.line, "customer_id", "no_customer", id=sale.customer_id)
                failed.add(sale.line)
            if sale.telegram_id is not None and sale.telegram_id not in found_telegrams:
                report.reject(sale.line, "telegram_id", "no_telegram_customer")
                failed.add(sale.line)
        return failed

    # --- customers -------------------------------------------------------------------------

    async def customers(
        self,
        lines: Iterable[str],
        *,
        actor: int | None = None,
        source: str = "",
        progress: Progress | None = None,
        batch_size: int = BATCH,
    ) -> ImportReport:
        """A shop's customer list, matched by phone. A new phone becomes a customer who
        is joined to their Telegram chat when they share that number; a known one gets
        only the blanks filled in, and the file can turn marketing off but never on."""
        report = ImportReport("customers")
        rows = Rows(lines, report)
        if not rows.header(CUSTOMER_COLUMNS, required=("phone",)):
            return report

        async def write(session: AsyncSession, batch: Batch) -> None:
            people = [
                p
                for line, values in batch
                if (p := self._person(line, dict(zip(rows.columns, values, strict=False)), report))
            ]
            await self._write_people(session, people, report)

        return await self._apply(
            report,
            _read(rows, batch_size),
            write,
            progress,
            actor=actor,
            source=source,
            summary=lambda: {
                "rows": report.rows,
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
            },
        )

    def _person(self, line: int, values: dict[str, str], report: ImportReport) -> _Person | None:
        errors = report.error_count
        phone = ""
        if not values.get("phone"):
            report.reject(line, "phone", "required")
        else:
            try:
                phone = cached_phone(values["phone"], self.policy.phone_region)
            except InvalidPhone:
                report.reject(line, "phone", "phone")
        name = values.get("name") or None
        if name is not None and len(name) > 128:
            report.reject(line, "name", "too_long", limit=128)
        birthday = None
        if values.get("birthday"):
            try:
                birthday = date.fromisoformat(values["birthday"])
            except ValueError:
                report.reject(line, "birthday", "date")
            else:
                if not date(1900, 1, 1) <= birthday <= self.clock.now().date():
                    report.reject(line, "birthday", "birthday")
        locale = (values.get("locale") or "").lower() or None
        if locale is not None and locale not in LOCALES:
            report.reject(line, "locale", "locale", locales=", ".join(LOCALES))
        region = values.get("region") or None
        if region is not None and len(region) > 64:
            report.reject(line, "region", "too_long", limit=64)
        marketing = None
        flag = (values.get("marketing_opt_in") or "").lower()
        if flag in _TRUE:
            marketing = True
        elif flag in _FALSE:
            marketing = False
        elif flag:
            report.reject(line, "marketing_opt_in", "boolean")
        if report.error_count > errors:
            return None
        return _Person(line, phone, name, birthday, locale, region, marketing)

    async def _write_people(
        self, session: AsyncSession, people: list[_Person], report: ImportReport
    ) -> None:
        if not people:
            return
        known = {
            c.phone: c
            for c in await session.scalars(
                select(Customer).where(Customer.phone.in_({p.phone for p in people}))
            )
        }
        fresh: dict[str, dict[str, Any]] = {}
        now = self.clock.now()
        for person in people:
            if person.phone in fresh:
                _fill(fresh[person.phone], person)
                report.unchanged += 1
            elif (customer := known.get(person.phone)) is not None:
                if _update(customer, person):
                    report.updated += 1
                else:
                    report.unchanged += 1
            else:
                fresh[person.phone] = {
                    "phone": person.phone,
                    "name": person.name,
                    "birthday": person.birthday,
                    "locale": person.locale or self.default_locale,
                    "region": person.region,
                    "source": "import",
                    "marketing_opt_in": True if person.marketing is None else person.marketing,
                    "reachable": True,
                    "created_at": now,
                }
                report.created += 1
        await session.flush()
        if fresh:
            rows = list(fresh.values())
            for start in range(0, len(rows), 500):
                await session.execute(insert(Customer), rows[start : start + 500])


class _SalesWriter:
    """A batch of sales and refunds written set-based, a few statements per batch whatever
    its length, with the ledger `record_purchase` would write taking the rows one by one.

    Every new row gets its purchase id first, in file order, so that "recorded before" is
    "has a smaller id". The sales go in through the driver itself (SQLAlchemy's per-row work
    would cost more than the database's), skipping references already recorded. Then the
    refunds, which the same checks as `Loyalty.record_purchase` accept or refuse against
    what came before them. Then each sale's points at the tier its customer held just
    before it (the trailing year's spend, refunds included), and each refund's share of
    what its sale earned, never more than the balance at that moment."""

    def __init__(
        self,
        session: AsyncSession,
        tables: _SqliteTables | _PostgresTables,
        importer: Importer,
    ) -> None:
        self.session = session
        self.tables = tables
        self.importer = importer

    @staticmethod
    async def open(session: AsyncSession, importer: Importer) -> _SalesWriter:
        connection = await session.connection()
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            # Through SQLAlchemy, so that its transaction has begun when the driver is used.
            await connection.exec_driver_sql(_PG_STAGING)
        driver = (await connection.get_raw_connection()).driver_connection
        currency = importer.policy.currency
        tables: _SqliteTables | _PostgresTables = _SqliteTables(driver, currency)
        if postgres:
            tables = _PostgresTables(driver, currency, importer.loyalty.expiry_for)
        return _SalesWriter(session, tables, importer)

    async def write(self, rows: list[Sale], report: ImportReport) -> None:
        fresh: list[Sale] = []
        seen: set[str] = set()
        for sale in rows:
            # The same reference twice in a batch: the first is recorded, the second known.
            if sale.reference in seen:
                report.unchanged += 1
                continue
            seen.add(sale.reference)
            fresh.append(sale)
        if not fresh:
            return
        now = self.importer.clock.now()
        numbered = list(zip(await self.tables.reserve(len(fresh)), fresh, strict=True))
        sales = [(pid, s) for pid, s in numbered if s.amount > 0]
        await self.tables.insert_sales(sales, now)
        refunds = await self._refunds([(pid, s) for pid, s in numbered if s.amount < 0], report)
        credited = await self.tables.credited(sales)
        report.created += len(credited) + len(refunds)
        # Recorded before (or by someone else between our reads and our insert): theirs stands.
        report.unchanged += len(sales) - len(credited)
        await self._ledger(numbered, credited, refunds, now, report)

    async def _refunds(
        self, refunds: list[tuple[int, Sale]], report: ImportReport
    ) -> dict[int, _Refund]:
        """The batch's new refunds that pass `check_refund`, written; by purchase id."""
        if not refunds:
            return {}
        session = self.session
        known = set(
            await session.scalars(
                select(Purchase.reference).where(
                    Purchase.reference.in_({s.reference for _, s in refunds})
                )
            )
        )
        found = await session.execute(
            select(
                Purchase.reference,
                Purchase.id,
                Purchase.amount,
                Purchase.customer_id,
                Purchase.phone,
            ).where(Purchase.reference.in_({s.refund_of for _, s in refunds}))
        )
        originals = {
            ref: _Original(pid, amount, cid, phone) for ref, pid, amount, cid, phone in found
        }
        refunded: dict[int, Decimal] = {}
        if originals:
            earlier = await session.execute(
                select(Purchase.refund_of_id, func.sum(Purchase.amount))
                .where(Purchase.refund_of_id.in_({o.id for o in originals.values()}))
                .group_by(Purchase.refund_of_id)
            )
            refunded = {pid: Decimal(total) for pid, total in earlier if pid is not None}
        buyers = await self._buyers([s for _, s in refunds])
        accepted: dict[int, _Refund] = {}
        for pid, sale in refunds:
            if sale.reference in known:
                report.unchanged += 1
                continue
            original = originals.get(sale.refund_of or "")
            # A sale further down the file is not recorded yet when its refund comes.
            if original is not None and original.id > pid:
                original = None
            target = None
            if original is not None:
                target = RefundTarget(
                    original.amount, original.customer_id, refunded.get(original.id, Decimal(0))
                )
            try:
                check_refund(sale.refund_of or "", sale.amount, target, buyers.get(sale.line))
            except SaleError as error:
                report.reject(sale.line, error.field, error.code, **error.params)
                continue
            assert original is not None
            refunded[original.id] = refunded.get(original.id, Decimal(0)) + sale.amount
            known.add(sale.reference)
            accepted[pid] = _Refund(sale, original)
        if accepted:
            now = self.importer.clock.now()
            await session.execute(
                insert(Purchase),
                [
                    {
                        "id": pid,
                        "customer_id": r.original.customer_id,
                        "phone": r.original.phone,
                        "reference": r.sale.reference,
                        "amount": r.sale.amount,
                        "currency": r.sale.currency,
                        "occurred_at": r.sale.occurred_at,
                        "store": r.sale.store,
                        "channel": "import",
                        "refund_of_id": r.original.id,
                        "created_at": now,
                    }
                    for pid, r in accepted.items()
                ],
            )
        return accepted

    async def _buyers(self, refunds: list[Sale]) -> dict[int, int]:
        """The customer each refund names itself, by line, for those that name one."""
        session = self.session
        phones = {s.phone for s in refunds if s.phone is not None}
        telegrams = {s.telegram_id for s in refunds if s.telegram_id is not None}
        by_phone: dict[str | None, int] = {}
        by_telegram: dict[int | None, int] = {}
        if phones:
            found = await session.execute(
                select(Customer.phone, Customer.id).where(Customer.phone.in_(phones))
            )
            by_phone = {phone: cid for phone, cid in found}
        if telegrams:
            tg_found = await session.execute(
                select(Customer.telegram_id, Customer.id).where(Customer.telegram_id.in_(telegrams))
            )
            by_telegram = {telegram: cid for telegram, cid in tg_found}
        buyers: dict[int, int] = {}
        for sale in refunds:
            buyer = sale.customer_id
            if buyer is None and sale.telegram_id is not None:
                buyer = by_telegram.get(sale.telegram_id)
            if buyer is None and sale.phone is not None:
                buyer = by_phone.get(sale.phone)
            if buyer is not None:
                buyers[sale.line] = buyer
        return buyers

    async def _ledger(
        self,
        numbered: list[tuple[int, Sale]],
        credited: list[_Credited],
        refunds: dict[int, _Refund],
        now: datetime,
        report: ImportReport,
    ) -> None:
        """The ledger lines of the batch, in file order."""
        policy = self.importer.policy
        sales = {pid: (cid, spend) for pid, cid, spend in credited if cid is not None}
        refunded: dict[int, tuple[int, _Original]] = {}
        for pid, refund in refunds.items():
            if refund.original.customer_id is not None:
                refunded[pid] = (refund.original.customer_id, refund.original)
        owners = {r.original.customer_id for r in refunds.values()} - {None}
        balances: dict[int | None, int] = {}
        earned: dict[int, int] = {}
        if owners:
            found = await self.session.execute(
                select(PointsEntry.customer_id, func.sum(PointsEntry.delta))
                .where(PointsEntry.customer_id.in_(owners))
                .group_by(PointsEntry.customer_id)
            )
            balances = {cid: int(total) for cid, total in found}
            gained = await self.session.execute(
                select(PointsEntry.purchase_id, func.sum(PointsEntry.delta))
                .where(
                    PointsEntry.purchase_id.in_({r.original.id for r in refunds.values()}),
                    PointsEntry.reason == "purchase",
                )
                .group_by(PointsEntry.purchase_id)
            )
            earned = {pid: int(total) for pid, total in gained if pid is not None}
        entries: list[_Entry] = []
        for pid, sale in numbered:
            if pid in sales:
                cid, spend = sales[pid]
                tier = policy.tier_for_spend(Decimal(spend).scaleb(-2))
                points = points_for(sale.amount, policy, tier)
                earned[pid] = points
                if points:
                    entries.append((cid, points, sale.reference, pid, sale, "purchase"))
                    report.points += points
                    if cid in owners:
                        balances[cid] = balances.get(cid, 0) + points
            elif pid in refunded:
                cid, original = refunded[pid]
                owed = refund_share(sale.amount, original.amount, earned.get(original.id, 0))
                delta = -min(owed, balances.get(cid, 0))
                if delta:
                    entries.append((cid, delta, sale.reference, pid, None, "refund"))
                    report.points += delta
                    balances[cid] = balances.get(cid, 0) + delta
        if entries:
            await self.tables.ledger(entries, now)


@dataclass(frozen=True)
class _Original:
    """The purchase a refund names."""

    id: int
    amount: Decimal
    customer_id: int | None
    phone: str | None


@dataclass(frozen=True)
class _Refund:
    sale: Sale
    original: _Original


class _SqliteTables:
    """The batch on SQLite. The import holds SQLite's one write lock from its first write,
    so ids after the largest one are free for it to give."""

    def __init__(self, driver: Any, currency: str) -> None:
        self.driver = driver
        self.currency = currency

    async def reserve(self, count: int) -> list[int]:
        # A write that changes nothing takes the lock before the largest id is read.
        await self.driver.execute("DELETE FROM purchases WHERE false")
        found = await self.driver.execute_fetchall("SELECT COALESCE(MAX(id), 0) FROM purchases")
        last = next(iter(found))[0]
        return list(range(last + 1, last + 1 + count))

    async def insert_sales(self, sales: list[tuple[int, Sale]], now: datetime) -> None:
        currency, created = self.currency, sqlite_moment(now)
        await self.driver.executemany(
            _SQLITE_INSERT,
            [
                (
                    s.customer_id,
                    s.telegram_id,
                    s.phone,
                    pid,
                    s.reference,
                    s.cents,
                    currency,
                    s.stored_at,
                    s.store,
                    created,
                )
                for pid, s in sales
            ],
        )

    async def credited(self, sales: list[tuple[int, Sale]]) -> list[_Credited]:
        if not sales:
            return []
        found = await self.driver.execute_fetchall(_SQLITE_CREDITED, (sales[0][0], sales[-1][0]))
        return [(pid, cid, spend) for pid, cid, spend in found]

    async def ledger(self, entries: list[_Entry], now: datetime) -> None:
        created = sqlite_moment(now)
        await self.driver.executemany(
            _SQLITE_LEDGER,
            [
                (cid, delta, ref, pid, sale.expires_stored if sale else None, reason, created)
                for cid, delta, ref, pid, sale, reason in entries
            ],
        )


class _PostgresTables:
    """The batch on PostgreSQL: its ids taken from the sequence, the sales COPY'd into a
    temporary table and inserted from there by one INSERT ... SELECT, the ledger COPY'd."""

    def __init__(
        self, driver: Any, currency: str, expiry: Callable[[datetime], datetime | None]
    ) -> None:
        self.driver = driver
        self.currency = currency
        self.expiry = expiry
        self.inserted: list[tuple[int, int | None]] = []

    async def reserve(self, count: int) -> list[int]:
        return sorted(await self.driver.fetchval(_PG_NEW_IDS, count))

    async def insert_sales(self, sales: list[tuple[int, Sale]], now: datetime) -> None:
        self.inserted = []
        if not sales:
            return
        await self.driver.execute("TRUNCATE import_sales")
        await self.driver.copy_records_to_table(
            "import_sales",
            records=[
                (
                    pid,
                    s.reference,
                    s.cents,
                    s.occurred_at,
                    s.store,
                    s.phone,
                    s.customer_id,
                    s.telegram_id,
                )
                for pid, s in sales
            ],
            columns=_PG_STAGED,
        )
        found = await self.driver.fetch(_PG_INSERT, self.currency, now)
        self.inserted = [(pid, cid) for pid, cid in found]

    async def credited(self, sales: list[tuple[int, Sale]]) -> list[_Credited]:
        moments = {pid: s.occurred_at for pid, s in sales}
        owned = [(pid, cid) for pid, cid in self.inserted if cid is not None]
        spends: dict[int, int] = {}
        if owned:
            found = await self.driver.fetch(
                _PG_SPEND,
                [pid for pid, _ in owned],
                [cid for _, cid in owned],
                [moments[pid] - TRAILING for pid, _ in owned],
                [moments[pid] for pid, _ in owned],
            )
            spends = {pid: spend for pid, spend in found}
        return [(pid, cid, spends.get(pid, 0)) for pid, cid in self.inserted]

    async def ledger(self, entries: list[_Entry], now: datetime) -> None:
        expiry = self.expiry
        await self.driver.copy_records_to_table(
            "points_ledger",
            records=[
                (cid, delta, ref, pid, expiry(sale.occurred_at) if sale else None, reason, now)
                for cid, delta, ref, pid, sale, reason in entries
            ],
            columns=_LEDGER_COLUMNS,
        )


# A sale the batch wrote: id, customer_id, and the customer's spend in cents over the
# year before it (0 without a customer).
_Credited = tuple[int, int | None, int]
# A ledger line: customer_id, points, reference, purchase_id, the sale whose points
# expire (None for a refund's, which do not), reason.
_Entry = tuple[int, int, str, int, Sale | None, str]


# On PostgreSQL the run is staged here (ON COMMIT DROP: it lasts as long as the import).
_PG_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS import_sales (
    id integer NOT NULL, reference varchar(128) NOT NULL, amount bigint NOT NULL,
    occurred_at timestamptz NOT NULL, store varchar(64), phone varchar(20),
    customer_id integer, telegram_id bigint)
ON COMMIT DROP
"""
_PG_STAGED = (
    "id",
    "reference",
    "amount",
    "occurred_at",
    "store",
    "phone",
    "customer_id",
    "telegram_id",
)
# The sequence named once (MATERIALIZED): asked beside nextval, its name was looked up
# again for every id, 30 ms a batch of 10,000 instead of 3.
_PG_NEW_IDS = """
WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('purchases', 'id')::regclass AS seq)
SELECT array_agg(nextval(s.seq)) FROM s, generate_series(1, $1)
"""
# A given customer_id or telegram_id brings that customer's phone; a phone brings the
# customer who linked it, if anyone has.
_PG_INSERT = """
INSERT INTO purchases (id, customer_id, phone, reference, amount, currency, occurred_at,
                       store, channel, created_at)
SELECT s.id, COALESCE(s.customer_id, t.id, p.id),
       CASE WHEN s.phone IS NOT NULL THEN s.phone
            WHEN s.customer_id IS NOT NULL THEN i.phone ELSE t.phone END,
       s.reference, s.amount, $1, s.occurred_at, s.store, 'import', $2
FROM import_sales s
LEFT JOIN customers i ON i.id = s.customer_id
LEFT JOIN customers t ON t.telegram_id = s.telegram_id
LEFT JOIN customers p ON p.phone = s.phone
ON CONFLICT (reference) DO NOTHING
RETURNING id, customer_id
"""
_PG_SPEND = """
SELECT r.id, (
    SELECT COALESCE(SUM(q.amount), 0) FROM purchases q
    WHERE q.customer_id = r.customer_id AND q.occurred_at >= r.since
      AND q.occurred_at < r.occurred_at AND q.id < r.id)
FROM unnest($1::integer[], $2::integer[], $3::timestamptz[], $4::timestamptz[])
    AS r(id, customer_id, since, occurred_at)
"""
_SQLITE_INSERT = """
INSERT INTO purchases (customer_id, phone, id, reference, amount, currency, occurred_at,
                       store, channel, created_at)
VALUES (
    COALESCE(?1, (SELECT id FROM customers WHERE telegram_id = ?2),
             (SELECT id FROM customers WHERE phone = ?3)),
    COALESCE(?3, (SELECT phone FROM customers WHERE id = ?1),
             (SELECT phone FROM customers WHERE telegram_id = ?2)),
    ?4, ?5, ?6, ?7, ?8, ?9, 'import', ?10)
ON CONFLICT (reference) DO NOTHING
"""
# Times are stored as UTC text to the microsecond, "YYYY-MM-DD HH:MM:SS.ffffff", and the
# trailing year is whole days: the year before a sale starts on the date so many days
# earlier at the same time of day.
_SQLITE_CREDITED = f"""
SELECT p.id, p.customer_id, CASE WHEN p.customer_id IS NULL THEN 0 ELSE (
    SELECT COALESCE(SUM(q.amount), 0) FROM purchases q
    WHERE q.customer_id = p.customer_id
      AND q.occurred_at >= date(substr(p.occurred_at, 1, 10), '-{TRAILING.days} days')
                           || substr(p.occurred_at, 11)
      AND q.occurred_at < p.occurred_at AND q.id < p.id) END
FROM purchases p WHERE p.id BETWEEN ? AND ? AND p.refund_of_id IS NULL
"""
_LEDGER_COLUMNS = (
    "customer_id",
    "delta",
    "reference",
    "purchase_id",
    "expires_at",
    "reason",
    "created_at",
)
_SQLITE_LEDGER = """
INSERT INTO points_ledger (customer_id, delta, reference, purchase_id, expires_at, reason,
                           created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""


# The tables an import writes into, by its kind.
_WRITTEN = {"purchases": ("purchases", "points_ledger"), "customers": ("customers",)}


class _Statistics:
    """PostgreSQL plans from table statistics, and this transaction's rows are in none yet:
    a table that grows from empty inside one import would be read whole for every batch's
    lookups. ANALYZE in the transaction counts its own rows; it runs each time the rows
    written have doubled, so a few times per file."""

    FIRST = 20_000

    def __init__(self, dialect: str, tables: tuple[str, ...]) -> None:
        self.enabled = dialect == "postgresql"
        self.tables = tables
        self.next = self.FIRST

    async def refresh(self, session: AsyncSession, written: int) -> None:
        if self.enabled and written >= self.next:
            for table in self.tables:
                await session.execute(text(f"ANALYZE {table}"))
            self.next = 2 * written


@dataclass(frozen=True)
class _Pending:
    """Records handed to the child process, the time they were read at, and the child's
    answer to come (None once the child is gone)."""

    records: Batch
    now: datetime
    parsed: asyncio.Future[Parsed] | None


def _received(parsed: Parsed, report: ImportReport) -> list[Sale]:
    rows, faults = parsed
    report.absorb(faults)
    return [Sale._make(row) for row in rows]


async def _read(rows: Rows, size: int) -> AsyncGenerator[tuple[Batch, int]]:
    """Each batch and the count of rows read through it."""
    for batch in rows.batches(size):
        yield batch, rows.report.rows


def _fill(row: dict[str, Any], person: _Person) -> None:
    """A phone listed twice: the later line fills what the earlier left blank."""
    for key in ("name", "birthday", "region"):
        if row[key] is None:
            row[key] = getattr(person, key)
    if person.marketing is False:
        row["marketing_opt_in"] = False


def _update(customer: Customer, person: _Person) -> bool:
    changed = False
    for key in ("name", "birthday", "region"):
        value = getattr(person, key)
        if value is not None and getattr(customer, key) is None:
            setattr(customer, key, value)
            changed = True
    if person.locale and customer.telegram_id is None and customer.locale != person.locale:
        customer.locale = person.locale
        changed = True
    if person.marketing is False and customer.marketing_opt_in:
        customer.marketing_opt_in = False
        changed = True
    return changed
