"""Reading an import file: its rows in batches, each purchase row's values checked and
turned into a sale, and the report of what was refused and why.

Holds nothing that needs the database, so that a child process can parse one batch while
the importer writes the one before (see `services.imports`); it imports little for the
same reason, a child starting sooner.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from services.clock import points_expiry
from services.phones import InvalidPhone, normalize_phone

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
BUYER_COLUMNS = ("phone", "customer_id", "telegram_id")
# The report lists this many bad rows and counts the rest.
MAX_REPORTED = 100
# Numbers remembered by the checking process: more than a big shop's file names (a
# million rows name some 170,000 phones; parsing one costs as much as the rest of its
# row), some 30 MB when full.
PHONE_CACHE = 262_144
MAX_AMOUNT = Decimal("10000000000")

# Lines of the file as `Rows.records` and `Rows.batches` give them: (line number, values).
Batch = list[tuple[int, list[str]]]
# A batch parsed by `parse_plainly`: its sales as plain tuples, and what it refused.
Parsed = tuple[list[tuple[Any, ...]], "ImportReport"]


# Why a row or a sale (services.loyalty.SaleError) is refused, as the command line and the
# API say it; in Telegram the staff_import_reasons template says it by the same keys, in
# the staff member's language.
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
    "refund_unknown": "no sale with reference {reference!r}",
    "refund_other_customer": "that sale belongs to another customer",
    "refund_exceeds": "refunds would exceed the original sale",
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

    def absorb(self, other: ImportReport) -> None:
        """Take in the rows another report of the same file counted, and what it refused."""
        self.rows += other.rows
        self.error_count += other.error_count
        room = MAX_REPORTED - len(self.errors)
        if room > 0:
            self.errors.extend(other.errors[:room])


class Sale(NamedTuple):
    """A purchase row that passed its checks, with what writing it to SQLite needs worked
    out here (in the checking process, beside the importer rather than on its turn)."""

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
    cents: int
    # The time of the sale and when the points it earns expire (None: never), each as
    # SQLite stores a time.
    stored_at: str
    expires_stored: str | None


@lru_cache(maxsize=64)
def _one_of_each(zone: tzinfo) -> tzinfo:
    """The first of the equal time zones seen: every time parsed with an offset has a zone
    object of its own, and pickling a batch for the parent process (which keeps one copy
    of each object) spent more on those than on the rest of the row."""
    return zone


@lru_cache(maxsize=PHONE_CACHE)
def cached_phone(raw: str, region: str) -> str:
    """normalize_phone remembered: a shop's file names the same customers again and again,
    and parsing a number is slow."""
    return normalize_phone(raw, region)


@dataclass(frozen=True)
class SaleParser:
    """The checks of a purchase row, by the shop's currency, phone region and time zone."""

    fields: Fields
    currency: str
    phone_region: str
    zone: ZoneInfo
    expiry_months: int

    def parse(self, records: Batch, now: datetime) -> tuple[list[Sale], ImportReport]:
        """The good rows of the records as read (`Rows.records`) as sales, and a report
        of the rows and the bad ones; `now` is when an empty occurred_at happened and what
        a time may not be a day after."""
        report = ImportReport("purchases")
        rows = tidy(records, self.fields.width, report)
        latest = now + timedelta(days=1)
        sales = [s for line, values in rows if (s := self.sale(line, values, now, latest, report))]
        return sales, report

    def sale(
        self, line: int, values: list[str], now: datetime, latest: datetime, report: ImportReport
    ) -> Sale | None:
        """The row as a sale, or None with what is wrong with it in the report; `latest`
        is the last moment a sale may have happened at (a day after `now`)."""
        errors = report.error_count
        fields = self.fields
        reference = values[fields.reference]
        if not reference:
            report.reject(line, "reference", "required")
        elif len(reference) > 128:
            report.reject(line, "reference", "too_long", limit=128)
        amount = _amount(values[fields.amount], line, report)
        currency = values[fields.currency].upper() or self.currency
        if currency != self.currency:
            report.reject(line, "currency", "currency", currency=self.currency)
        occurred = self.moment(values[fields.occurred_at], now, latest, line, report)
        store = values[fields.store] or None
        if store is not None and len(store) > 64:
            report.reject(line, "store", "too_long", limit=64)
        refund_of = values[fields.refund_of] or None
        if amount is not None and amount < 0 and refund_of is None:
            report.reject(line, "refund_of", "refund_needs_sale")
        if amount is not None and amount > 0 and refund_of is not None:
            report.reject(line, "refund_of", "refund_not_negative")
        raw_phone = values[fields.phone]
        raw_customer = values[fields.customer_id]
        raw_telegram = values[fields.telegram_id]
        if (raw_phone, raw_customer, raw_telegram).count("") < 2:
            # Refused at the second buyer column given, in the order phone, customer_id,
            # telegram_id.
            second = "customer_id" if raw_phone and raw_customer else "telegram_id"
            report.reject(line, second, "one_buyer")
        elif not (raw_phone or raw_customer or raw_telegram) and (amount is None or amount > 0):
            report.reject(line, "phone", "no_buyer")
        phone = customer_id = telegram_id = None
        if raw_phone:
            try:
                phone = cached_phone(raw_phone, self.phone_region)
            except InvalidPhone:
                report.reject(line, "phone", "phone")
        if raw_customer:
            customer_id = _integer(raw_customer, "customer_id", line, report)
        if raw_telegram:
            telegram_id = _integer(raw_telegram, "telegram_id", line, report)
        if report.error_count > errors or amount is None or occurred is None:
            return None
        expires = points_expiry(occurred, self.expiry_months)
        return Sale(
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
            int(amount * 100),
            sqlite_moment(occurred),
            sqlite_moment(expires) if expires is not None else None,
        )

    def moment(
        self, text: str, now: datetime, latest: datetime, line: int, report: ImportReport
    ) -> datetime | None:
        """ISO 8601 (Python reads a "Z" as UTC since 3.11); without an offset it is the
        shop's local time; empty is now."""
        if not text:
            return now
        try:
            if len(text) == 10:
                moment = datetime.combine(date.fromisoformat(text), time(0), self.zone)
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            report.reject(line, "occurred_at", "moment")
            return None
        # combine() rather than replace(tzinfo=...), which takes four times as long.
        zone = self.zone if moment.tzinfo is None else _one_of_each(moment.tzinfo)
        moment = datetime.combine(moment.date(), moment.time(), zone)
        if moment > latest:
            report.reject(line, "occurred_at", "future")
            return None
        return moment


def sqlite_moment(moment: datetime) -> str:
    """A time as SQLAlchemy stores a `UTCDateTime` in SQLite: UTC, to the microsecond.
    (combine() rather than replace(tzinfo=None), which takes three times as long.)"""
    utc = moment.astimezone(UTC)
    return datetime.combine(utc.date(), utc.time()).isoformat(" ", "microseconds")


def parse_plainly(parser: SaleParser, batch: Batch, now: datetime) -> Parsed:
    """SaleParser.parse for a child process: plain tuples cross to the parent at half the
    cost of named ones."""
    sales, faults = parser.parse(batch, now)
    return [tuple(sale) for sale in sales], faults


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
    if not text.isdigit() or len(text) > 18:
        report.reject(line, column, "whole")
        return None
    return int(text)


class Rows:
    """The CSV's header and data rows, as (line number, values) in batches."""

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

    def records(self, size: int) -> Iterator[Batch]:
        """The data records as read, (line number, values), `size` at a time; where the
        file cannot be read further, that is reported and the records end."""
        batch: Batch = []
        reader = self.reader
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader, None)
            except (csv.Error, UnicodeDecodeError) as error:
                _unreadable(self.report, start, error)
                break
            if values is None:
                break
            batch.append((start, values))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def batches(self, size: int) -> Iterator[Batch]:
        """The records, tidied (see `tidy`)."""
        for records in self.records(size):
            yield tidy(records, len(self.columns), self.report)


def tidy(records: Batch, width: int, report: ImportReport) -> Batch:
    """Each row as its stripped values in header order, and one empty value after them,
    where `Fields` points the columns the header does not have; blank lines are passed
    over, and a row with more or fewer values than the header has is refused."""
    rows: Batch = []
    for start, raw in records:
        values = [v.strip() for v in raw]
        if not any(values):
            continue
        report.rows += 1
        if len(values) != width:
            report.reject(start, "", "fields", found=len(values), expected=width)
            continue
        values.append("")
        rows.append((start, values))
    return rows


class Fields:
    """Where each purchase column is in a row, so that a row is read without a dict."""

    def __init__(self, columns: list[str]) -> None:
        self.width = len(columns)

        def at(name: str) -> int:
            return columns.index(name) if name in columns else len(columns)

        self.reference = at("reference")
        self.phone = at("phone")
        self.customer_id = at("customer_id")
        self.telegram_id = at("telegram_id")
        self.amount = at("amount")
        self.currency = at("currency")
        self.occurred_at = at("occurred_at")
        self.store = at("store")
        self.refund_of = at("refund_of")


def _unreadable(report: ImportReport, line: int, error: Exception) -> None:
    if isinstance(error, UnicodeDecodeError):
        report.reject(line, "", "encoding")
    else:
        report.reject(line, "", "csv", detail=str(error))
