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
import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import chain, pairwise
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
    create_engine,
    delete,
    func,
    literal_column,
    select,
    type_coerce,
)
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
from services import abc, bgnbd, rfm, tiers
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
OVERDUE_RISK = 0.6
LONG_OVERDUE_RISK = 0.8
COMPLAINT_RISK = 0.1
MAX_COMPLAINT_RISK = 0.2
LOW_RATING_RISK = 0.1
MAX_RULE_RISK = 0.95
# The model is named among the reasons once it alone puts the risk this high.
MODEL_REASON_AT = 0.5

FloatArray = NDArray[np.float64]
# Snapshot rows for customers [start, stop), the last column being the given computed_at.
_Rows = Callable[[int, int, Any], Iterator[tuple[Any, ...]]]
_EPOCH = date(1970, 1, 1)
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
    """Per-customer rule risk, and each customer's reasons (JSON objects, in order)."""

    risk: FloatArray
    reasons: dict[int, list[str]]


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
        async with self.db.session() as session:
            complaints: dict[int, int] = dict(
                (
                    await session.execute(
                        select(Ticket.customer_id, func.count(Ticket.id))
                        .where(
                            Ticket.kind == TicketKind.COMPLAINT,
                            Ticket.created_at >= now - timedelta(days=rules.signal_days),
                        )
                        .group_by(Ticket.customer_id)
                    )
                ).all()
            )
            low = await self._lowest_ratings(session, now)
        n = facts.ids.size
        history = np.flatnonzero(facts.purchase_days > 0)
        x = facts.purchase_days[history] - 1
        t_x = (facts.last_day[history] - facts.first_day[history]) / unit
        big_t = (today - facts.first_day[history]) / unit
        recency_days = np.full(n, np.nan)
        recency_days[history] = today - facts.last_day[history]

        model, model_risk = self._fit(x, t_x, big_t)
        signals = self._signals(n, history, x, t_x, big_t, facts, complaints, low)
        churn = np.full(n, np.nan)
        churn[history] = signals.risk[history]
        if model_risk is not None:
            churn[history] = np.maximum(churn[history], model_risk)
            named = model_risk >= MODEL_REASON_AT
            alive = np.round(1 - model_risk[named], 3)
            for row, value in zip(history[named].tolist(), alive.tolist(), strict=True):
                signals.reasons.setdefault(row, []).append(
                    f'{{"code": "model", "alive": {value!r}}}'
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

        def rows(start: int, stop: int, stamp: Any) -> Iterator[tuple[Any, ...]]:
            window = slice(start, stop)
            reasons = signals.reasons
            for i, cid, recency, freq, cents, rs, fs, ms, seg, cls, tier, risk in zip(
                range(start, stop),
                facts.ids[window].tolist(),
                recency_days[window].tolist(),
                facts.frequency[window].tolist(),
                facts.monetary_cents[window].tolist(),
                r[window].tolist(),
                f[window].tolist(),
                m[window].tolist(),
                segment_codes[window].tolist(),
                classes[window].tolist(),
                tier_index[window].tolist(),
                np.round(churn[window], 4).tolist(),
                strict=True,
            ):
                # NaN, the only value unequal to itself, stands for "none" in the arrays.
                yield (
                    cid,
                    None if recency != recency else int(recency),
                    int(freq),
                    cents,
                    rs or None,
                    fs or None,
                    ms or None,
                    segment_keys[seg],
                    abc.ABC_CLASSES[cls],
                    tier_rules[tier].key,
                    None if risk != risk else risk,
                    f"[{', '.join(reasons[i])}]" if i in reasons else None,
                    stamp,
                )

        await self._write(n, rows, now)
        return SegmentationReport(
            computed_at=now,
            customers=n,
            buyers=int(scored.sum()),
            window_days=rules.window_days,
            abc=abc.summarize_abc(monetary[scored], classes[scored]),
            segments={
                segment_keys[code]: count for code, count in Counter(segment_codes.tolist()).items()
            },
            tiers=dict(Counter(tier_rules[i].key for i in tier_index.tolist())),
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
            return _Facts.of(np.empty((0, 7)))
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
            loop = asyncio.get_running_loop()
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(len(ranges), mp_context=context) as pool:
                rules = self.policy.segmentation
                parts = await asyncio.gather(
                    *(
                        loop.run_in_executor(
                            pool,
                            _read_sqlite_facts,
                            path,
                            self.zone.key,
                            rules.window_days,
                            now,
                            start,
                            stop,
                        )
                        for start, stop in ranges
                    )
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
        risk = np.zeros(n)
        reasons: dict[int, list[str]] = {}
        repeat = x > 0
        own = np.where(repeat, t_x * unit / np.where(repeat, x, 1.0), np.nan)
        if repeat.any():
            usual = np.where(repeat, own, float(np.median(own[repeat])))
            silence = (big_t - t_x) * unit
            overdue = (usual > 0) & (silence > rules.interval_factor * usual)
            long = silence > 2 * rules.interval_factor * usual
            risk[rows[overdue]] = np.where(long[overdue], LONG_OVERDUE_RISK, OVERDUE_RISK)
            for row, own_interval, days, typical in zip(
                rows[overdue].tolist(),
                repeat[overdue].tolist(),
                np.rint(silence[overdue]).astype(np.int64).tolist(),
                np.rint(usual[overdue]).astype(np.int64).tolist(),
                strict=True,
            ):
                code = "silence" if own_interval else "silence_shop"
                reasons[row] = [f'{{"code": "{code}", "days": {days}, "usual": {typical}}}']
        complaint_rows = facts.at(list(complaints))
        for i, count in zip(complaint_rows.tolist(), complaints.values(), strict=True):
            if i >= 0 and count:
                risk[i] += min(COMPLAINT_RISK * count, MAX_COMPLAINT_RISK)
                reasons.setdefault(i, []).append(f'{{"code": "complaints", "count": {count}}}')
        low_rows = facts.at(list(low))
        for i, score in zip(low_rows.tolist(), low.values(), strict=True):
            if i >= 0:
                risk[i] += LOW_RATING_RISK
                reasons.setdefault(i, []).append(f'{{"code": "low_rating", "score": {score}}}')
        return _Signals(np.minimum(risk, MAX_RULE_RISK), reasons)

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
        columns = ", ".join(_SNAPSHOT_COLUMNS)
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in _SNAPSHOT_COLUMNS[1:] if c not in _INDEXED
        )
        upsert = (
            f"INSERT INTO customer_segments ({columns})"
            f" VALUES ({', '.join('?' * len(_SNAPSHOT_COLUMNS))})"
            f" ON CONFLICT (customer_id) DO UPDATE SET {updates}"
        )
        positions = [_SNAPSHOT_COLUMNS.index(c) for c in ("customer_id", *_INDEXED)]
        changed = " OR ".join(f"{c} IS NOT ?{k}" for k, c in enumerate(_INDEXED, start=2))
        moved = (
            "UPDATE customer_segments SET "
            + ", ".join(f"{c} = ?{k}" for k, c in enumerate(_INDEXED, start=2))
            + f" WHERE customer_id = ?1 AND ({changed})"
        )

        async def write(batch: list[tuple[Any, ...]]) -> None:
            async with self.db.transaction() as session:
                connection = await session.connection()
                await connection.exec_driver_sql(upsert, batch)
                await connection.exec_driver_sql(
                    moved, [tuple(row[k] for k in positions) for row in batch]
                )

        # The next batch is built while SQLite's thread writes the previous one.
        writing: asyncio.Task[None] | None = None
        try:
            for start in range(0, n, WRITE_BATCH):
                batch = list(rows(start, min(n, start + WRITE_BATCH), stamp))
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
                    records=rows(start, min(n, start + WRITE_BATCH), now),
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
    """The rows of _facts_query as a float array of 7 columns. Ids, counts, cents and day
    numbers are integers well inside float64's exact range."""
    blocks = [np.empty((0, 7))]
    for partition in partitions:
        values = chain.from_iterable(partition)
        blocks.append(
            np.fromiter(values, dtype=np.float64, count=7 * len(partition)).reshape(-1, 7)
        )
    return np.concatenate(blocks)


def _read_sqlite_facts(
    path: str, zone_key: str, window_days: int, now: datetime, start: int, stop: int
) -> NDArray[np.float64]:
    """_facts_query on an SQLite file, in a process of its own (see Segmentation._facts)."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            query = _facts_query("sqlite", ZoneInfo(zone_key), window_days, now, start, stop)
            result = connection.execute(query)
            return _table(list(result.partitions(READ_PARTITION)))
    finally:
        engine.dispose()
