"""The nightly classification (客户分类): RFM segment, ABC class, tier and churn risk for
every customer, written as one snapshot row each with the time it was computed.

The database does the counting: one grouped query gives every customer's window,
trailing-twelve-month and purchase-day figures (plus two small ones for complaints and low
ratings), read in partitions into numpy arrays, so memory grows with the number of
customers, never with the number of purchases. services/rfm.py, abc.py, tiers.py and
bgnbd.py compute on those arrays, and the snapshots are written in bulk through the driver
(executemany on SQLite, COPY on PostgreSQL).

- RFM: purchases within the policy window; customers without one are "potential" when
  they never bought and "lost" when they bought before the window. Recency is days since
  the last purchase, in the business's calendar.
- ABC: revenue within the window, among the customers who bought in it.
- Tier: net spend over the trailing twelve months.
- Churn risk: 1 - P(alive) of the BG/NBD model fitted on the shop's own purchase days,
  raised by the rule signals below; while too few customers have bought to fit the model
  (or it does not converge) the rule signals alone decide, and the report says why.

Rule signals (each also a reason staff see on the customer):

=====================================  =============================================
signal                                 risk it stands for
=====================================  =============================================
silent > factor × usual interval       0.6 (0.8 beyond twice that)
each complaint within signal_days      +0.1, at most +0.2
a rating <= low_rating within them     +0.1
=====================================  =============================================

The usual interval is the customer's own mean gap between purchase days; a customer who
bought on one day only is measured against the shop's median interval. The rule risk is
capped at 0.95.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Integer,
    Select,
    and_,
    case,
    cast,
    delete,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import QueryableAttribute

from models import (
    Customer,
    Purchase,
    SegmentSnapshot,
    SurveyAnswer,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
    TicketKind,
)
from models.database import Database
from services import abc, bgnbd, rfm, sqlite_read, tiers
from services.clock import Clock
from services.loyalty import TRAILING
from services.policy import Policy

log = logging.getLogger(__name__)

READ_PARTITION = 50_000
# The grouped pass is split into this many ranges of customers, each on a connection of its
# own: the database works on them in parallel (PostgreSQL in its backends, SQLite in
# processes of its own past PROCESS_READS_FROM customers), which on the two cores of a
# small server nearly halves the longest step.
PARALLEL_READS = 2
# Below this many customers the read takes under a second, less than starting processes.
PROCESS_READS_FROM = 200_000
WRITE_BATCH = 50_000
# Snapshot rows per INSERT on SQLite (13 parameters each, far below its limit of 32,766).
SQLITE_STATEMENT_ROWS = 100
OVERDUE_RISK = 0.6
LONG_OVERDUE_RISK = 0.8
COMPLAINT_RISK = 0.1
MAX_COMPLAINT_RISK = 0.2
LOW_RATING_RISK = 0.1
MAX_RULE_RISK = 0.95
# The model is named among the reasons once it alone puts the risk this high.
MODEL_REASON_AT = 0.5

FloatArray = NDArray[np.float64]
# Snapshot rows for customers [start, stop) as Python objects in the order of
# _SNAPSHOT_COLUMNS, one row each, the last column being the given computed_at.
_Rows = Callable[[int, int, Any], NDArray[np.object_]]
_EPOCH = date(1970, 1, 1)
# The columns _facts_query selects.
_FACT_COLUMNS = 7
_INDEXED = ("segment", "abc_class", "tier")
_SNAPSHOT_COLUMNS = (
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "segment",
    "abc_class",
    "tier",
    "churn_probability",
    "risk_reasons",
    "computed_at",
)


@dataclass(frozen=True)
class ChurnModel:
    """The BG/NBD fit used for churn risk, or why the rule signals decided alone."""

    fitted: bool
    unit_days: float
    reason: str | None = None
    r: float | None = None
    alpha: float | None = None
    a: float | None = None
    b: float | None = None
    log_likelihood: float | None = None
    customers: int = 0


@dataclass(frozen=True)
class SegmentationReport:
    computed_at: datetime
    customers: int
    buyers: int  # bought within the window
    window_days: int
    abc: tuple[abc.AbcClassSummary, ...]
    segments: dict[str, int]
    tiers: dict[str, int]
    at_risk: int  # churn risk at or above 0.5
    model: ChurnModel

    def as_json(self) -> dict[str, Any]:
        return {
            "computed_at": self.computed_at.isoformat(),
            "customers": self.customers,
            "buyers": self.buyers,
            "window_days": self.window_days,
            "abc": [asdict(s) for s in self.abc],
            "segments": self.segments,
            "tiers": self.tiers,
            "at_risk": self.at_risk,
            "model": asdict(self.model),
        }


@dataclass(frozen=True)
class _Facts:
    """Per-customer figures from the database, one array element per customer not erased,
    in ascending id order. Money is in cents; days count from 1970-01-01 in the business's
    calendar, NaN for a customer without a purchase day."""

    ids: NDArray[np.int64]
    frequency: FloatArray  # purchases in the window
    monetary_cents: NDArray[np.int64]  # net spend in the window
    spend_cents: NDArray[np.int64]  # net spend over the trailing twelve months
    purchase_days: FloatArray  # distinct days with a purchase, up to now
    first_day: FloatArray
    last_day: FloatArray

    @classmethod
    def of(cls, table: FloatArray) -> _Facts:
        """From the rows of the grouped query: id, frequency, monetary, spend, days,
        first day, last day (the days 0 for a customer without a purchase day)."""
        has_days = table[:, 4] > 0
        return cls(
            ids=table[:, 0].astype(np.int64),
            frequency=table[:, 1],
            monetary_cents=table[:, 2].astype(np.int64),
            spend_cents=table[:, 3].astype(np.int64),
            purchase_days=table[:, 4],
            first_day=np.where(has_days, table[:, 5], np.nan),
            last_day=np.where(has_days, table[:, 6], np.nan),
        )

    def at(self, customer_ids: list[int]) -> NDArray[np.intp]:
        """Positions of the given customers, -1 for those not classified."""
        keys = np.asarray(customer_ids, dtype=np.int64)
        found = np.minimum(np.searchsorted(self.ids, keys), max(self.ids.size - 1, 0))
        hit = self.ids.size > 0 and self.ids[found] == keys
        return np.where(hit, found, -1).astype(np.intp)


@dataclass
class _Signals:
    """Per-customer rule risk, and each customer's reasons: JSON objects in order, joined
    by ", ", an empty text for a customer without one."""

    risk: FloatArray
    reasons: NDArray[np.object_]

    def add(self, rows: NDArray[np.intp], reasons: list[str]) -> None:
        """Append one reason to each of the given rows (no row twice)."""
        before = self.reasons[rows]
        added = np.array(reasons, dtype=object)
        more = before != ""
        added[more] = before[more] + ", " + added[more]
        self.reasons[rows] = added


class Segmentation:
    def __init__(self, db: Database, policy: Policy, clock: Clock, zone: ZoneInfo) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.zone = zone

    async def run(self) -> SegmentationReport:
        """Classify every customer not erased and replace their snapshots."""
        rules = self.policy.segmentation
        unit = rules.model_unit_days
        now = self.clock.now()
        today = (now.astimezone(self.zone).date() - _EPOCH).days
        facts = await self._facts(now)
        n = facts.ids.size
        history = np.flatnonzero(facts.purchase_days > 0)
        x = facts.purchase_days[history] - 1
        t_x = (facts.last_day[history] - facts.first_day[history]) / unit
        big_t = (today - facts.first_day[history]) / unit
        recency_days = np.full(n, np.nan)
        recency_days[history] = today - facts.last_day[history]

        # The model is fitted on a thread of its own while the rule signals are read and
        # computed: numpy lets other threads run during its array loops.
        (model, model_risk), signals = await asyncio.gather(
            asyncio.to_thread(self._fit, x, t_x, big_t),
            self._rule_signals(now, history, x, t_x, big_t, facts),
        )
        churn = np.full(n, np.nan)
        churn[history] = signals.risk[history]
        if model_risk is not None:
            churn[history] = np.maximum(churn[history], model_risk)
            named = model_risk >= MODEL_REASON_AT
            alive = np.round(1 - model_risk[named], 3)
            signals.add(
                history[named], [f'{{"code": "model", "alive": {v!r}}}' for v in alive.tolist()]
            )

        monetary = facts.monetary_cents / 100
        scored = facts.frequency >= 1
        # Codes index rfm.SEGMENTS, plus one more for customers who never bought.
        segment_keys = [*rfm.SEGMENTS, "potential"]
        segment_codes = np.where(
            np.isnan(recency_days), segment_keys.index("potential"), rfm.SEGMENTS.index("lost")
        ).astype(np.uint8)
        r = np.zeros(n, dtype=np.uint8)
        f = np.zeros(n, dtype=np.uint8)
        m = np.zeros(n, dtype=np.uint8)
        if scored.any():
            # Recency for scoring only: a window purchase always has a purchase day.
            scores = rfm.score_rfm(
                np.nan_to_num(recency_days[scored]), facts.frequency[scored], monetary[scored]
            )
            r[scored], f[scored], m[scored] = scores.r, scores.f, scores.m
            segment_codes[scored] = scores.segment
        classes = np.full(n, 2, dtype=np.uint8)
        classes[scored] = abc.classify_abc(
            monetary[scored], a_share=rules.abc_a_share, b_share=rules.abc_b_share
        )
        tier_rules = self.policy.tiers
        tier_index = tiers.classify_tiers(facts.spend_cents / 100, tier_rules)

        names = {
            "segment": np.array(segment_keys, dtype=object)[segment_codes],
            "abc_class": np.array(abc.ABC_CLASSES, dtype=object)[classes],
            "tier": np.array([t.key for t in tier_rules], dtype=object)[tier_index],
        }
        rounded_churn = np.round(churn, 4)
        reasons = np.full(n, None, dtype=object)
        some = signals.reasons != ""
        reasons[some] = "[" + signals.reasons[some] + "]"

        def rows(start: int, stop: int, stamp: Any) -> NDArray[np.object_]:
            window = slice(start, stop)
            recency, risk = recency_days[window], rounded_churn[window]
            columns = {
                "customer_id": facts.ids[window].astype(object),
                "recency_days": _nullable(
                    np.nan_to_num(recency).astype(np.int64), np.isnan(recency)
                ),
                "frequency": facts.frequency[window].astype(np.int64).astype(object),
                "monetary": facts.monetary_cents[window].astype(object),
                "r_score": _nullable(r[window], r[window] == 0),
                "f_score": _nullable(f[window], f[window] == 0),
                "m_score": _nullable(m[window], m[window] == 0),
                **{key: values[window] for key, values in names.items()},
                "churn_probability": _nullable(risk, np.isnan(risk)),
                "risk_reasons": reasons[window],
                "computed_at": stamp,
            }
            table = np.empty((stop - start, len(_SNAPSHOT_COLUMNS)), dtype=object)
            for k, column in enumerate(_SNAPSHOT_COLUMNS):
                table[:, k] = columns[column]
            return table

        await self._write(n, rows, now)
        return SegmentationReport(
            computed_at=now,
            customers=n,
            buyers=int(scored.sum()),
            window_days=rules.window_days,
            abc=abc.summarize_abc(monetary[scored], classes[scored]),
            segments=_tally(segment_codes, segment_keys),
            tiers=_tally(tier_index, [t.key for t in tier_rules]),
            at_risk=int(np.sum(np.nan_to_num(churn) >= 0.5)),
            model=model,
        )

    async def _facts(self, now: datetime) -> _Facts:
        """Every customer's figures in one grouped pass over the purchases, split into
        ranges of customer ids that run side by side on connections of their own."""
        async with self.db.session() as session:
            low, high = (
                await session.execute(select(func.min(Customer.id), func.max(Customer.id)))
            ).one()
        if low is None:
            return _Facts.of(np.empty((0, _FACT_COLUMNS)))
        ranges = list(
            pairwise(np.linspace(low, high + 1, PARALLEL_READS + 1).astype(np.int64).tolist())
        )
        path = make_url(self.db.url).database
        if (
            self.db.dialect == "sqlite"
            and path
            and path != ":memory:"
            and high - low >= PROCESS_READS_FROM
        ):
            # One SQLite library in one process serialises its connections on shared
            # locks: two reader threads took as long as one. Processes of their own read
            # the file side by side.
            parts = await asyncio.gather(
                *(self._facts_in_process(path, now, start, stop) for start, stop in ranges)
            )
        else:
            parts = await asyncio.gather(
                *(self._facts_between(now, start, stop) for start, stop in ranges)
            )
        return _Facts.of(np.concatenate(parts))

    async def _facts_between(self, now: datetime, start: int, stop: int) -> NDArray[np.float64]:
        """The figures of customers with start <= id < stop, one row each, by id."""
        query = _facts_query(
            self.db.dialect, self.zone, self.policy.segmentation.window_days, now, start, stop
        )
        # Read in a transaction: PostgreSQL streams through a cursor only inside one.
        async with self.db.transaction() as session:
            connection = await session.connection()
            result = await connection.stream(query)
            return _table([p async for p in result.partitions(READ_PARTITION)])

    async def _facts_in_process(
        self, path: str, now: datetime, start: int, stop: int
    ) -> NDArray[np.float64]:
        """_facts_between on an SQLite file, read by a process of its own."""
        query = _facts_query(
            "sqlite", self.zone, self.policy.segmentation.window_days, now, start, stop
        )
        # Every value in it is a time, a day count or a customer id computed here.
        sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            sqlite_read.__name__,
            path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            out, _ = await child.communicate(sql.encode())
        except BaseException:
            # Cancelled (the bot stopping): the child's read is of no use any more.
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            raise
        if child.returncode:
            raise RuntimeError(
                f"reading the figures failed in a child process ({child.returncode})"
            )
        return np.frombuffer(out, dtype=np.float64).reshape(-1, _FACT_COLUMNS)

    async def _lowest_ratings(self, session: AsyncSession, now: datetime) -> dict[int, int]:
        """Per customer, their lowest ticket rating or survey rating within signal_days,
        when at or below the policy's low rating."""
        rules = self.policy.segmentation
        since = now - timedelta(days=rules.signal_days)
        lowest: dict[int, int] = {}
        tickets = await session.execute(
            select(Ticket.customer_id, func.min(Ticket.csat))
            .where(Ticket.csat <= rules.low_rating, Ticket.closed_at >= since)
            .group_by(Ticket.customer_id)
        )
        surveys = await session.execute(
            select(SurveyResponse.customer_id, func.min(SurveyAnswer.value))
            .join(SurveyAnswer, SurveyAnswer.response_id == SurveyResponse.id)
            .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
            .where(
                SurveyQuestion.kind == "rating",
                SurveyAnswer.value <= rules.low_rating,
                SurveyAnswer.created_at >= since,
            )
            .group_by(SurveyResponse.customer_id)
        )
        for customer_id, score in [*tickets.all(), *surveys.all()]:
            if score is not None:
                lowest[customer_id] = min(score, lowest.get(customer_id, score))
        return lowest

    def _fit(
        self, x: FloatArray, t_x: FloatArray, big_t: FloatArray
    ) -> tuple[ChurnModel, FloatArray | None]:
        rules = self.policy.segmentation
        try:
            params = bgnbd.fit_bgnbd(x, t_x, big_t, min_customers=rules.model_min_customers)
        except bgnbd.BgNbdError as error:
            log.info("churn model not fitted, rule signals decide: %s", error)
            return ChurnModel(False, rules.model_unit_days, reason=str(error)), None
        alive = bgnbd.probability_alive(params, x, t_x, big_t)
        model = ChurnModel(
            True,
            rules.model_unit_days,
            r=params.r,
            alpha=params.alpha,
            a=params.a,
            b=params.b,
            log_likelihood=params.log_likelihood,
            customers=params.n_customers,
        )
        return model, 1.0 - alive

    async def _rule_signals(
        self,
        now: datetime,
        rows: NDArray[np.intp],
        x: FloatArray,
        t_x: FloatArray,
        big_t: FloatArray,
        facts: _Facts,
    ) -> _Signals:
        async with self.db.session() as session:
            complaints: dict[int, int] = dict(
                (
                    await session.execute(
                        select(Ticket.customer_id, func.count(Ticket.id))
                        .where(
                            Ticket.kind == TicketKind.COMPLAINT,
                            Ticket.created_at
                            >= now - timedelta(days=self.policy.segmentation.signal_days),
                        )
                        .group_by(Ticket.customer_id)
                    )
                ).all()
            )
            low = await self._lowest_ratings(session, now)
        return self._signals(facts.ids.size, rows, x, t_x, big_t, facts, complaints, low)

    def _signals(
        self,
        n: int,
        rows: NDArray[np.intp],
        x: FloatArray,
        t_x: FloatArray,
        big_t: FloatArray,
        facts: _Facts,
        complaints: dict[int, int],
        low: dict[int, int],
    ) -> _Signals:
        rules = self.policy.segmentation
        unit = rules.model_unit_days
        signals = _Signals(np.zeros(n), np.full(n, "", dtype=object))
        risk = signals.risk
        repeat = x > 0
        own = np.where(repeat, t_x * unit / np.where(repeat, x, 1.0), np.nan)
        if repeat.any():
            usual = np.where(repeat, own, float(np.median(own[repeat])))
            silence = (big_t - t_x) * unit
            overdue = (usual > 0) & (silence > rules.interval_factor * usual)
            long = silence > 2 * rules.interval_factor * usual
            risk[rows[overdue]] = np.where(long[overdue], LONG_OVERDUE_RISK, OVERDUE_RISK)
            signals.add(
                rows[overdue],
                [
                    f'{{"code": "{"silence" if own else "silence_shop"}", "days": {days},'
                    f' "usual": {typical}}}'
                    for own, days, typical in zip(
                        repeat[overdue].tolist(),
                        np.rint(silence[overdue]).astype(np.int64).tolist(),
                        np.rint(usual[overdue]).astype(np.int64).tolist(),
                        strict=True,
                    )
                ],
            )
        counts = np.fromiter(complaints.values(), dtype=np.int64, count=len(complaints))
        complaint_rows = facts.at(list(complaints))
        complained = (complaint_rows >= 0) & (counts > 0)
        complaint_rows, counts = complaint_rows[complained], counts[complained]
        risk[complaint_rows] += np.minimum(COMPLAINT_RISK * counts, MAX_COMPLAINT_RISK)
        signals.add(
            complaint_rows, [f'{{"code": "complaints", "count": {c}}}' for c in counts.tolist()]
        )
        scores = np.fromiter(low.values(), dtype=np.int64, count=len(low))
        low_rows = facts.at(list(low))
        rated = low_rows >= 0
        risk[low_rows[rated]] += LOW_RATING_RISK
        signals.add(
            low_rows[rated],
            [f'{{"code": "low_rating", "score": {s}}}' for s in scores[rated].tolist()],
        )
        np.minimum(risk, MAX_RULE_RISK, out=risk)
        return signals

    async def _write(self, n: int, rows: _Rows, now: datetime) -> None:
        """Replace the snapshots; erased customers lose theirs."""
        if self.db.dialect == "postgresql":
            await self._copy(n, rows, now)
        else:
            # The text SQLAlchemy stores for a UTC time on SQLite, so comparisons hold.
            await self._executemany(n, rows, now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
        async with self.db.transaction() as session:
            await session.execute(
                delete(SegmentSnapshot).where(
                    SegmentSnapshot.customer_id.in_(
                        select(Customer.id).where(Customer.erased_at.is_not(None))
                    )
                )
            )

    async def _executemany(self, n: int, rows: _Rows, stamp: str) -> None:
        # Batches in their own transactions, so the bot's writes get the SQLite lock
        # between them; readers see either a customer's old snapshot or the new one.
        # Segment, ABC class and tier are indexed and mostly the same as the night before:
        # they are set only where they changed, which spares SQLite half the index work.
        # Each statement takes many rows: running a statement costs more than its rows.
        columns = ", ".join(_SNAPSHOT_COLUMNS)
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in _SNAPSHOT_COLUMNS[1:] if c not in _INDEXED
        )
        keyed = ("customer_id", *_INDEXED)
        positions = [_SNAPSHOT_COLUMNS.index(c) for c in keyed]
        changed = " OR ".join(f"customer_segments.{c} IS NOT fresh.{c}" for c in _INDEXED)

        def upsert(count: int) -> str:
            return (
                f"INSERT INTO customer_segments ({columns})"
                f" VALUES {_placeholders(count, len(_SNAPSHOT_COLUMNS))}"
                f" ON CONFLICT (customer_id) DO UPDATE SET {updates}"
            )

        def moved(count: int) -> str:
            return (
                f"WITH fresh ({', '.join(keyed)}) AS (VALUES {_placeholders(count, len(keyed))})"
                " UPDATE customer_segments SET "
                + ", ".join(f"{c} = fresh.{c}" for c in _INDEXED)
                + " FROM fresh WHERE customer_segments.customer_id = fresh.customer_id"
                f" AND ({changed})"
            )

        async def write(table: NDArray[np.object_]) -> None:
            async with self.db.transaction() as session:
                connection = await session.connection()
                for statement, values in ((upsert, table), (moved, table[:, positions])):
                    whole = len(values) // SQLITE_STATEMENT_ROWS * SQLITE_STATEMENT_ROWS
                    if whole:
                        groups = values[:whole].reshape(whole // SQLITE_STATEMENT_ROWS, -1)
                        await connection.exec_driver_sql(
                            statement(SQLITE_STATEMENT_ROWS), list(map(tuple, groups.tolist()))
                        )
                    if whole < len(values):
                        rest = tuple(values[whole:].ravel().tolist())
                        await connection.exec_driver_sql(statement(len(values) - whole), rest)

        # The next batch is built while SQLite's thread writes the previous one.
        writing: asyncio.Task[None] | None = None
        try:
            for start in range(0, n, WRITE_BATCH):
                batch = rows(start, min(n, start + WRITE_BATCH), stamp)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(write(batch))
        finally:
            if writing is not None:
                await writing

    async def _copy(self, n: int, rows: _Rows, now: datetime) -> None:
        # COPY into a temporary table, then one upsert: PostgreSQL swaps every snapshot in
        # one transaction, so readers see the previous night's or this night's, never a mix.
        columns = ", ".join(_SNAPSHOT_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _SNAPSHOT_COLUMNS[1:])
        async with self.db.transaction() as session:
            connection = await session.connection()
            await connection.exec_driver_sql(
                "CREATE TEMPORARY TABLE segments_new"
                " (LIKE customer_segments INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            driver = await _asyncpg(connection)
            for start in range(0, n, WRITE_BATCH):
                await driver.copy_records_to_table(
                    "segments_new",
                    records=rows(start, min(n, start + WRITE_BATCH), now).tolist(),
                    columns=list(_SNAPSHOT_COLUMNS),
                )
            await connection.exec_driver_sql(
                f"INSERT INTO customer_segments ({columns}) SELECT {columns} FROM segments_new"
                f" ON CONFLICT (customer_id) DO UPDATE SET {updates}"
            )


async def _asyncpg(connection: AsyncConnection) -> Any:
    raw = await connection.get_raw_connection()
    return raw.driver_connection


def _local_day(
    dialect: str,
    zone: ZoneInfo,
    now: datetime,
    moment: ColumnElement[Any] | QueryableAttribute[Any],
) -> ColumnElement[int]:
    """The moment's day in the business's calendar, as days since 1970-01-01."""
    if dialect == "postgresql":
        local = cast(func.timezone(zone.key, moment), Date)
        return type_coerce(local - literal_column("DATE '1970-01-01'"), Integer)
    # SQLite keeps UTC text; the zone's current offset moves it to the local day.
    offset = now.astimezone(zone).utcoffset() or timedelta(0)
    seconds = func.unixepoch(moment) + int(offset.total_seconds())
    return type_coerce(seconds // 86400, Integer)


def _facts_query(
    dialect: str, zone: ZoneInfo, window_days: int, now: datetime, start: int, stop: int
) -> Select[int, Any, Any, Any, Any, Any, Any]:
    """Every figure of the customers with start <= id < stop in one grouped pass over
    their purchases, one row per customer not erased, by id."""
    amount = type_coerce(Purchase.amount, BigInteger)
    day = _local_day(dialect, zone, now, Purchase.occurred_at)
    in_window = Purchase.occurred_at >= now - timedelta(days=window_days)
    bought = Purchase.amount > 0
    per_customer = (
        select(
            Purchase.customer_id.label("customer_id"),
            func.count(case((and_(in_window, bought), 1))).label("frequency"),
            func.sum(case((in_window, amount))).label("monetary"),
            func.sum(case((Purchase.occurred_at >= now - TRAILING, amount))).label("spend"),
            func.count(case((bought, day)).distinct()).label("days"),
            # Days follow time, so the first and last days come from the first and
            # last times: two conversions per customer instead of per purchase.
            _local_day(dialect, zone, now, func.min(case((bought, Purchase.occurred_at)))).label(
                "first_day"
            ),
            _local_day(dialect, zone, now, func.max(case((bought, Purchase.occurred_at)))).label(
                "last_day"
            ),
        )
        .where(
            Purchase.customer_id >= start,
            Purchase.customer_id < stop,
            Purchase.occurred_at <= now,
        )
        .group_by(Purchase.customer_id)
        .subquery()
    )
    c = per_customer.c
    return (
        select(
            Customer.id,
            func.coalesce(c.frequency, 0),
            func.coalesce(c.monetary, 0),
            func.coalesce(c.spend, 0),
            func.coalesce(c.days, 0),
            func.coalesce(c.first_day, 0),
            func.coalesce(c.last_day, 0),
        )
        .outerjoin(per_customer, c.customer_id == Customer.id)
        .where(Customer.id >= start, Customer.id < stop, Customer.erased_at.is_(None))
        .order_by(Customer.id)
    )


def _table(partitions: Sequence[Sequence[Sequence[Any]]]) -> NDArray[np.float64]:
    """The rows of _facts_query as a float array. Ids, counts, cents and day numbers are
    integers well inside float64's exact range."""
    blocks = [sqlite_read.as_floats(partition, _FACT_COLUMNS) for partition in partitions]
    return np.concatenate([np.empty((0, _FACT_COLUMNS)), *blocks])


def _tally(codes: NDArray[np.integer[Any]], names: Sequence[str]) -> dict[str, int]:
    """How many of each code there are, by name, in the order they first appear."""
    values, firsts, counts = np.unique(codes, return_index=True, return_counts=True)
    order = np.argsort(firsts)
    return {
        names[v]: c for v, c in zip(values[order].tolist(), counts[order].tolist(), strict=True)
    }


def _placeholders(rows: int, columns: int) -> str:
    """VALUES rows of question marks for a statement taking several rows."""
    row = f"({', '.join('?' * columns)})"
    return ", ".join([row] * rows)


def _nullable(values: NDArray[Any], missing: NDArray[np.bool_]) -> NDArray[np.object_]:
    """The values as Python objects (what the drivers bind), None where missing."""
    objects = values.astype(object)
    objects[missing] = None
    return objects
