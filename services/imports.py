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

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, cast, func, insert, select, text, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models import Customer, PointsEntry, Purchase
from models.database import Database
from services.audit import record_audit
from services.clock import Clock
from services.loyalty import TRAILING, Loyalty, Sale, SaleError, points_for
from services.phones import InvalidPhone, normalize_phone
from services.policy import LOCALES, Policy

PURCHASE_COLUMNS = (
    "reference",
    "phone",
    "customer_id",
    "telegram_id",
    "amount",
    "currency",
    "occurred_at",
    "store",
    "refund_of",
)
CUSTOMER_COLUMNS = ("phone", "name", "birthday", "locale", "region", "marketing_opt_in")
BUYER_COLUMNS = ("phone", "customer_id", "telegram_id")
# The report lists this many bad rows and counts the rest.
MAX_REPORTED = 100
BATCH = 1000
PHONE_CACHE = 65536
MAX_AMOUNT = Decimal("10000000000")
_TRUE = {"true", "1", "yes", "y", "是", "t"}
_FALSE = {"false", "0", "no", "n", "否", "f"}

Progress = Callable[[int], None]


# Why a row is refused, as the command line and the API say it; in Telegram the
# staff_import_reason template says it by the same keys, in the staff member's language.
REASONS = {
    "required": "is required",
    "too_long": "is longer than {limit} characters",
    "currency": "the shop keeps accounts in {currency}",
    "refund_needs_sale": "a negative amount is a refund: name the sale",
    "refund_not_negative": "only a negative amount can refund a sale",
    "one_buyer": "give only one of phone, customer_id, telegram_id",
    "no_buyer": "give one of phone, customer_id, telegram_id",
    "buyer_column": "needs a phone, customer_id or telegram_id column",
    "phone": "is not a valid phone number",
    "moment": "is not a date and time like 2026-04-30T15:20:00",
    "future": "is in the future",
    "no_customer": "no customer {id}",
    "no_telegram_customer": "no customer with this Telegram id",
    "sale": "{detail}",
    "date": "is not a date like 1990-05-31",
    "birthday": "is not a plausible birthday",
    "locale": "must be one of {locales}",
    "boolean": "must be true or false",
    "number": "is not a number like 199.00",
    "nonzero": "must be a non-zero amount",
    "decimals": "has more than two decimals",
    "whole": "is not a whole number",
    "empty": "the file is empty; the first line must name the columns",
    "unknown_column": "unknown column; the columns are {columns}",
    "column_required": "this column is required",
    "column_twice": "the column appears twice",
    "fields": "has {found} fields, the header has {expected}",
    "encoding": "the file is not UTF-8 text; save it as CSV UTF-8",
    "csv": "not valid CSV: {detail}",
}


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    reason: str
    code: str = field(default="", compare=False)
    params: dict[str, object] = field(default_factory=dict, compare=False)


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    points: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    applied: bool = False

    def reject(self, line: int, column: str, code: str, **params: object) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED:
            reason = REASONS[code].format(**params)
            self.errors.append(RowError(line, column, reason, code, params))


class _Rejected(Exception):
    """Raised inside the transaction so that a file with bad rows leaves no trace."""


@dataclass(frozen=True)
class _Sale:
    line: int
    reference: str
    amount: Decimal
    currency: str
    occurred_at: datetime
    store: str | None
    refund_of: str | None
    phone: str | None
    customer_id: int | None
    telegram_id: int | None


@dataclass
class _Row:
    """A parsed sale with its buyer resolved, waiting to be written."""

    sale: _Sale
    customer_id: int | None
    phone: str | None


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
        # A shop's file names the same customers again and again; parsing a number is slow.
        self._phone = lru_cache(maxsize=PHONE_CACHE)(self._normalize)

    def _normalize(self, raw: str) -> str:
        return normalize_phone(raw, self.policy.phone_region)

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
        rows = _Rows(lines, report)
        if not rows.header(PURCHASE_COLUMNS, required=("reference", "amount")):
            return report
        if not any(c in rows.columns for c in BUYER_COLUMNS):
            report.reject(1, "", "buyer_column")
            return report
        try:
            async with self.db.transaction() as session:
                statistics = _Statistics(self.db.dialect, "purchases")
                for batch in rows.batches(batch_size):
                    parsed = [
                        s for line, values in batch if (s := self._sale(line, values, report))
                    ]
                    await self._write_sales(session, parsed, report)
                    await statistics.refresh(session, report.created)
                    if progress is not None:
                        progress(report.rows)
                if report.error_count:
                    raise _Rejected
                record_audit(
                    session,
                    at=self.clock.now(),
                    actor=actor,
                    action="import.purchases",
                    target_type="file",
                    target_id=source or None,
                    after={
                        "rows": report.rows,
                        "created": report.created,
                        "known": report.unchanged,
                        "points": report.points,
                    },
                )
        except _Rejected:
            return report
        report.applied = True
        return report

    def _sale(self, line: int, values: dict[str, str], report: ImportReport) -> _Sale | None:
        errors = report.error_count
        reference = values.get("reference", "")
        if not reference:
            report.reject(line, "reference", "required")
        elif len(reference) > 128:
            report.reject(line, "reference", "too_long", limit=128)
        amount = _amount(values.get("amount", ""), line, report)
        currency = (values.get("currency") or self.policy.currency).upper()
        if currency != self.policy.currency:
            report.reject(line, "currency", "currency", currency=self.policy.currency)
        occurred = self._moment(values.get("occurred_at", ""), line, report)
        store = values.get("store") or None
        if store is not None and len(store) > 64:
            report.reject(line, "store", "too_long", limit=64)
        refund_of = values.get("refund_of") or None
        if amount is not None and amount < 0 and refund_of is None:
            report.reject(line, "refund_of", "refund_needs_sale")
        if amount is not None and amount > 0 and refund_of is not None:
            report.reject(line, "refund_of", "refund_not_negative")
        given = [c for c in BUYER_COLUMNS if values.get(c)]
        if len(given) > 1:
            report.reject(line, given[1], "one_buyer")
        elif not given and (amount is None or amount > 0):
            report.reject(line, "phone", "no_buyer")
        phone = None
        if values.get("phone"):
            try:
                phone = self._phone(values["phone"])
            except InvalidPhone:
                report.reject(line, "phone", "phone")
        customer_id = _integer(values.get("customer_id", ""), "customer_id", line, report)
        telegram_id = _integer(values.get("telegram_id", ""), "telegram_id", line, report)
        if report.error_count > errors or amount is None or occurred is None:
            return None
        return _Sale(
            line,
            reference,
            amount,
            currency,
            occurred,
            store,
            refund_of,
            phone,
            customer_id,
            telegram_id,
        )

    def _moment(self, text: str, line: int, report: ImportReport) -> datetime | None:
        """ISO 8601; without an offset it is the shop's local time; empty is now."""
        now = self.clock.now()
        if not text:
            return now
        try:
            if len(text) == 10:
                moment = datetime.combine(date.fromisoformat(text), time(0), self.zone)
            else:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            report.reject(line, "occurred_at", "moment")
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        if moment > now + timedelta(days=1):
            report.reject(line, "occurred_at", "future")
            return None
        return moment

    async def _write_sales(
        self, session: AsyncSession, sales: list[_Sale], report: ImportReport
    ) -> None:
        if not sales:
            return
        owners = await self._owners(session, sales, report)
        known = set(
            await session.scalars(
                select(Purchase.reference).where(
                    Purchase.reference.in_({s.reference for s in sales})
                )
            )
        )
        waiting: list[_Row] = []
        for sale in sales:
            if sale.line in owners.failed:
                continue
            if sale.reference in known:
                report.unchanged += 1
                continue
            known.add(sale.reference)
            if sale.amount > 0:
                customer_id, phone = owners.of(sale)
                waiting.append(_Row(sale, customer_id, phone))
                continue
            await self._insert_sales(session, waiting, report)
            waiting = []
            await self._refund(session, sale, report)
        await self._insert_sales(session, waiting, report)

    async def _owners(
        self, session: AsyncSession, sales: list[_Sale], report: ImportReport
    ) -> _Owners:
        ids = {s.customer_id for s in sales if s.customer_id is not None}
        telegrams = {s.telegram_id for s in sales if s.telegram_id is not None}
        phones = {s.phone for s in sales if s.phone is not None}
        owners = _Owners()
        if ids:
            found = await session.execute(
                select(Customer.id, Customer.phone).where(Customer.id.in_(ids))
            )
            owners.by_id = dict(found.all())
        if telegrams:
            by_telegram = await session.execute(
                select(Customer.telegram_id, Customer.id, Customer.phone).where(
                    Customer.telegram_id.in_(telegrams)
                )
            )
            owners.by_telegram = {t: (i, p) for t, i, p in by_telegram if t is not None}
        if phones:
            by_phone = await session.execute(
                select(Customer.phone, Customer.id).where(Customer.phone.in_(phones))
            )
            owners.by_phone = {p: i for p, i in by_phone if p is not None}
        for sale in sales:
            if sale.customer_id is not None and sale.customer_id not in owners.by_id:
                report.reject(sale.line, "customer_id", "no_customer", id=sale.customer_id)
                owners.failed.add(sale.line)
            if sale.telegram_id is not None and sale.telegram_id not in owners.by_telegram:
                report.reject(sale.line, "telegram_id", "no_telegram_customer")
                owners.failed.add(sale.line)
        return owners

    async def _insert_sales(
        self, session: AsyncSession, rows: list[_Row], report: ImportReport
    ) -> None:
        if not rows:
            return
        now = self.clock.now()
        dialect_insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        # One statement run over many rows: compiled once, sent in batches by the driver.
        statement = (
            dialect_insert(Purchase)
            .on_conflict_do_nothing(index_elements=["reference"])
            .returning(Purchase.id, Purchase.reference)
        )
        values = [
            {
                "customer_id": r.customer_id,
                "phone": r.phone,
                "reference": r.sale.reference,
                "amount": r.sale.amount,
                "currency": r.sale.currency,
                "occurred_at": r.sale.occurred_at,
                "store": r.sale.store,
                "channel": "import",
                "refund_of_id": None,
                "created_at": now,
            }
            for r in rows
        ]
        connection = await session.connection()
        result = await connection.execute(statement, values)
        ids = {ref: pid for pid, ref in result}
        inserted = [r for r in rows if r.sale.reference in ids]
        report.created += len(inserted)
        # Recorded by someone else between our check and our insert: theirs stands.
        report.unchanged += len(rows) - len(inserted)
        await self._credit(session, inserted, ids, report)

    async def _credit(
        self,
        session: AsyncSession,
        rows: list[_Row],
        ids: dict[str, int],
        report: ImportReport,
    ) -> None:
        """Points for new sales, each at the tier its customer held just before it:
        spend over the trailing year, counting sales already recorded and the earlier rows
        of this file, as if they had been recorded one by one."""
        owned = [r for r in rows if r.customer_id is not None]
        if not owned:
            return
        customers = {r.customer_id for r in owned}
        first = min(r.sale.occurred_at for r in owned) - TRAILING
        last = max(r.sale.occurred_at for r in owned)
        new_ids = {ids[r.sale.reference]: index for index, r in enumerate(owned)}
        history: dict[int, list[tuple[datetime, Decimal, int]]] = {}
        found = await session.execute(self._history(customers, first, last))
        for purchase_id, customer_id, occurred, amount in found:
            if customer_id is not None:
                order = new_ids.get(purchase_id, -1)
                history.setdefault(customer_id, []).append((occurred, amount, order))
        now = self.clock.now()
        entries = []
        for index, row in enumerate(owned):
            moment = row.sale.occurred_at
            spend = sum(
                (
                    amount
                    for occurred, amount, order in history.get(row.customer_id or 0, [])
                    if moment - TRAILING <= occurred < moment and order < index
                ),
                Decimal(0),
            )
            points = points_for(row.sale.amount, self.policy, self.policy.tier_for_spend(spend))
            if points:
                entries.append(
                    {
                        "customer_id": row.customer_id,
                        "delta": points,
                        "reason": "purchase",
                        "reference": row.sale.reference,
                        "purchase_id": ids[row.sale.reference],
                        "expires_at": self.loyalty.expiry_for(moment),
                        "created_at": now,
                    }
                )
                report.points += points
        for start in range(0, len(entries), 500):
            await session.execute(insert(PointsEntry), entries[start : start + 500])

    def _history(
        self, customers: set[int | None], first: datetime, last: datetime
    ) -> Select[int, int | None, datetime, Decimal]:
        """The customers' purchases in [first, last). On PostgreSQL one index lookup per
        customer (a lateral join), so that a planner without statistics for the rows this
        import wrote cannot choose to read the whole period instead."""
        columns = (Purchase.id, Purchase.customer_id, Purchase.occurred_at, Purchase.amount)
        if self.db.dialect != "postgresql":
            return select(*columns).where(
                Purchase.customer_id.in_(customers),
                Purchase.occurred_at >= first,
                Purchase.occurred_at < last,
            )
        wanted = (
            func.unnest(cast([c for c in customers if c is not None], ARRAY(Integer)))
            .table_valued("id")
            .render_derived()
        )
        per_customer = (
            select(*columns)
            .where(
                Purchase.customer_id == wanted.c.id,
                Purchase.occurred_at >= first,
                Purchase.occurred_at < last,
            )
            .lateral()
        )
        return select(*per_customer.c).select_from(wanted).join(per_customer, true())

    async def _refund(self, session: AsyncSession, sale: _Sale, report: ImportReport) -> None:
        # The checks that may refuse a refund all come before anything is written.
        try:
            result = await self.loyalty.record_in(
                session,
                Sale(
                    reference=sale.reference,
                    amount=sale.amount,
                    occurred_at=sale.occurred_at,
                    channel="import",
                    currency=sale.currency,
                    phone=sale.phone,
                    customer_id=sale.customer_id,
                    telegram_id=sale.telegram_id,
                    refund_of=sale.refund_of,
                    store=sale.store,
                ),
            )
        except SaleError as error:
            report.reject(sale.line, error.field, "sale", detail=error.reason)
            return
        report.created += 1
        report.points += result.points_awarded

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
        rows = _Rows(lines, report)
        if not rows.header(CUSTOMER_COLUMNS, required=("phone",)):
            return report
        try:
            async with self.db.transaction() as session:
                statistics = _Statistics(self.db.dialect, "customers")
                for batch in rows.batches(batch_size):
                    people = [
                        p for line, values in batch if (p := self._person(line, values, report))
                    ]
                    await self._write_people(session, people, report)
                    await statistics.refresh(session, report.created)
                    if progress is not None:
                        progress(report.rows)
                if report.error_count:
                    raise _Rejected
                record_audit(
                    session,
                    at=self.clock.now(),
                    actor=actor,
                    action="import.customers",
                    target_type="file",
                    target_id=source or None,
                    after={
                        "rows": report.rows,
                        "created": report.created,
                        "updated": report.updated,
                        "unchanged": report.unchanged,
                    },
                )
        except _Rejected:
            return report
        report.applied = True
        return report

    def _person(self, line: int, values: dict[str, str], report: ImportReport) -> _Person | None:
        errors = report.error_count
        phone = ""
        if not values.get("phone"):
            report.reject(line, "phone", "required")
        else:
            try:
                phone = self._phone(values["phone"])
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
        # Loaded customers were changed through the session; keep its memory to a batch.
        session.expunge_all()


class _Statistics:
    """PostgreSQL plans from table statistics, and this transaction's rows are in none yet:
    a table that grows from empty inside one import would be read whole for every batch's
    lookups. ANALYZE in the transaction counts its own rows; it runs each time the rows
    written have doubled, so a few times per file."""

    FIRST = 20_000

    def __init__(self, dialect: str, table: str) -> None:
        self.enabled = dialect == "postgresql"
        self.table = table
        self.next = self.FIRST

    async def refresh(self, session: AsyncSession, written: int) -> None:
        if self.enabled and written >= self.next:
            await session.execute(text(f"ANALYZE {self.table}"))
            self.next = 2 * written


@dataclass
class _Owners:
    by_id: dict[int, str | None] = field(default_factory=dict)
    by_telegram: dict[int, tuple[int, str | None]] = field(default_factory=dict)
    by_phone: dict[str, int] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)

    def of(self, sale: _Sale) -> tuple[int | None, str | None]:
        if sale.customer_id is not None:
            return sale.customer_id, self.by_id.get(sale.customer_id)
        if sale.telegram_id is not None:
            return self.by_telegram[sale.telegram_id]
        return self.by_phone.get(sale.phone or ""), sale.phone


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


def _amount(text: str, line: int, report: ImportReport) -> Decimal | None:
    if not text:
        report.reject(line, "amount", "required")
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        report.reject(line, "amount", "number")
        return None
    if not amount.is_finite() or amount == 0 or abs(amount) >= MAX_AMOUNT:
        report.reject(line, "amount", "nonzero")
        return None
    if amount != amount.quantize(Decimal("0.01")):
        report.reject(line, "amount", "decimals")
        return None
    return amount


def _integer(text: str, column: str, line: int, report: ImportReport) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        report.reject(line, column, "whole")
        return None
    return int(text)


class _Rows:
    """The CSV's header and data rows, as (line number, {column: value}) in batches."""

    def __init__(self, lines: Iterable[str], report: ImportReport) -> None:
        self.reader = csv.reader(iter(lines))
        self.report = report
        self.columns: list[str] = []

    def header(self, allowed: tuple[str, ...], required: tuple[str, ...]) -> bool:
        try:
            first = next(self.reader, None)
        except (csv.Error, UnicodeDecodeError) as error:
            _unreadable(self.report, 1, error)
            return False
        if not first:
            self.report.reject(1, "", "empty")
            return False
        self.columns = [c.strip().lstrip("\ufeff").lower() for c in first]
        for column in self.columns:
            if column not in allowed:
                self.report.reject(1, column, "unknown_column", columns=", ".join(allowed))
        for column in required:
            if column not in self.columns:
                self.report.reject(1, column, "column_required")
        duplicates = {c for c in self.columns if self.columns.count(c) > 1}
        for column in sorted(duplicates):
            self.report.reject(1, column, "column_twice")
        return self.report.error_count == 0

    def batches(self, size: int) -> Iterator[list[tuple[int, dict[str, str]]]]:
        batch: list[tuple[int, dict[str, str]]] = []
        width = len(self.columns)
        while True:
            start = self.reader.line_num + 1
            try:
                values = next(self.reader, None)
            except (csv.Error, UnicodeDecodeError) as error:
                _unreadable(self.report, start, error)
                break
            if values is None:
                break
            if not any(v.strip() for v in values):
                continue
            self.report.rows += 1
            if len(values) != width:
                self.report.reject(start, "", "fields", found=len(values), expected=width)
                continue
            batch.append((start, {c: v.strip() for c, v in zip(self.columns, values, strict=True)}))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def _unreadable(report: ImportReport, line: int, error: Exception) -> None:
    if isinstance(error, UnicodeDecodeError):
        report.reject(line, "", "encoding")
    else:
        report.reject(line, "", "csv", detail=str(error))
