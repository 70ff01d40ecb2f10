"""KPIs by their definitions, on a small shop whose numbers can be worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from models import (
    Customer,
    PointsEntry,
    Purchase,
    SegmentSnapshot,
    Survey,
    SurveyAnswer,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
)
from models.database import Database
from services.clock import FrozenClock
from services.policy import Policy
from services.reports import Period, PeriodError, Reports, parse_period

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def reports(db: Database, policy: Policy, clock: FrozenClock) -> Reports:
    return Reports(db, policy, clock, ZONE)


async def seed(db: Database, now: datetime) -> None:
    """Five customers over two 30-day periods:
    1 bought twice now and once before; 2 bought once now; 3 bought before only;
    4 bought before and now; 5 never bought (and was created now)."""
    day = timedelta(days=1)
    async with db.transaction() as session:
        people = [
            Customer(
                id=i,
                name=f"C{i}",
                locale="zh",
                marketing_opt_in=True,
                reachable=True,
                created_at=now - (day if i == 5 else 90 * day),
            )
            for i in range(1, 6)
        ]
        session.add_all(people)
        await session.flush()
        sales = [
            (1, 5, "100"),
            (1, 10, "50"),
            (1, 40, "70"),
            (2, 3, "30"),
            (3, 45, "500"),
            (4, 35, "20"),
            (4, 2, "25"),
            (2, 4, "-10"),
        ]
        for n, (who, ago, amount) in enumerate(sales):
            session.add(
                Purchase(
                    customer_id=who,
                    reference=f"R{n}",
                    amount=Decimal(amount),
                    currency="CNY",
                    occurred_at=now - ago * day,
                    channel="api",
                    created_at=now,
                )
            )
        for who, delta, ago in ((1, 150, 5), (1, -100, 2), (3, 500, 45), (2, 30, 3)):
            session.add(
                PointsEntry(customer_id=who, delta=delta, reason="x", created_at=now - ago * day)
            )
        minutes = [5, 10, 20, 40, 100]
        for n, wait in enumerate(minutes):
            created = now - (n + 1) * day
            session.add(
                Ticket(
                    customer_id=1 + n % 4,
                    kind="complaint" if n % 2 else "question",
                    status="closed",
                    created_at=created,
                    first_response_at=created + timedelta(minutes=wait),
                    closed_at=created + timedelta(hours=1),
                    csat=(5, 4, 2, 5, 3)[n],
                    escalation_level=0,
                )
            )
        session.add(
            Ticket(
                customer_id=2,
                kind="question",
                status="open",
                created_at=now - timedelta(hours=2),
                escalation_level=0,
            )
        )
        survey = Survey(key="s", title={"zh": "s", "en": "s"}, trigger="manual", created_at=now)
        session.add(survey)
        await session.flush()
        rating = SurveyQuestion(
            survey_id=survey.id, position=1, kind="rating", text={}, optional=False
        )
        nps = SurveyQuestion(survey_id=survey.id, position=2, kind="nps", text={}, optional=False)
        session.add_all([rating, nps])
        await session.flush()
        for who, (r, n) in enumerate(((4, 10), (5, 9), (3, 7), (1, 2)), start=1):
            response = SurveyResponse(
                survey_id=survey.id,
                customer_id=who,
                instance="open",
                status="completed",
                started_at=now - 3 * day,
            )
            session.add(response)
            await session.flush()
            for question, value in ((rating, r), (nps, n)):
                session.add(
                    SurveyAnswer(
                        response_id=response.id,
                        question_id=question.id,
                        value=value,
                        created_at=now - 3 * day,
                    )
                )
        for who, segment, r, f, m in (
            (1, "champions", 5, 4, 4),
            (2, "new", 5, 1, 1),
            (3, "lost", 1, 1, 2),
        ):
            session.add(
                SegmentSnapshot(
                    customer_id=who,
                    frequency=f,
                    monetary=Decimal(1),
                    r_score=r,
                    f_score=f,
                    m_score=m,
                    segment=segment,
                    abc_class="A",
                    tier="small",
                    computed_at=now,
                )
            )


async def test_kpis_follow_their_definitions(
    db: Database, clock: FrozenClock, reports: Reports
) -> None:
    await seed(db, clock.now())
    k = await reports.kpis(reports.period("30d"))
    assert (k.customers, k.new_customers) == (5, 1)
    # Bought in the last 30 days: 1 (twice), 2, 4; a refund is not a purchase.
    assert (k.active, k.repeat_buyers, k.purchases) == (3, 1, 4)
    assert k.repurchase_rate == pytest.approx(1 / 3)
    assert k.revenue == Decimal("195.00")
    # Active 30-60 days ago: 1, 3, 4; of them 1 and 4 bought again.
    assert (k.previous_active, k.retained) == (3, 2)
    assert k.retention_rate == pytest.approx(2 / 3) and k.churn_rate == pytest.approx(1 / 3)
    # CSAT: tickets 5, 4, 2, 5, 3 and survey ratings 4, 5, 3, 1.
    assert k.csat_count == 9 and k.csat_average == pytest.approx(32 / 9)
    # NPS: 10 and 9 promote, 7 is passive, 2 detracts: (2 - 1) / 4.
    assert (k.nps, k.nps_count) == (25.0, 4)
    assert (k.response_median, k.responded, k.within_sla) == (20.0, 5, 3)
    assert k.response_p90 == pytest.approx(76.0)
    assert k.waiting_past_sla == 1
    assert k.tickets_by_kind == {"question": 4, "complaint": 2}
    assert (k.points_issued, k.points_spent, k.points_outstanding) == (180, 100, 580)


async def test_chart_data(db: Database, clock: FrozenClock, reports: Reports) -> None:
    await seed(db, clock.now())
    segments = await reports.segment_map()
    assert segments.segments == {"champions": 1, "new": 1, "lost": 1}
    assert segments.cells == {(5, 4): 1, (5, 1): 1, (1, 2): 1}
    pareto = await reports.pareto(reports.period("60d"))
    # Net revenue: 1 → 220, 3 → 500, 4 → 45, 2 → 20; the top customer alone brings 63%.
    assert pareto.customers == 4
    assert pareto.revenue_share[:2] == [0.0, pytest.approx(500 / 785)]
    assert pareto.top_share_for_80 == 0.5
    trend = await reports.satisfaction_trend(reports.period("7d"))
    assert trend.bucket == "day" and len(trend.points) == 8
    answered = [p for p in trend.points if p.answers]
    assert [p.nps for p in answered if p.nps is not None] == [25.0]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-04", datetime(2026, 3, 31, 16, tzinfo=UTC), datetime(2026, 4, 30, 16, tzinfo=UTC)),
        (
            "2026-04-01..2026-04-02",
            datetime(2026, 3, 31, 16, tzinfo=UTC),
            datetime(2026, 4, 2, 16, tzinfo=UTC),
        ),
        ("month", datetime(2026, 4, 30, 16, tzinfo=UTC), datetime(2026, 5, 1, 2, tzinfo=UTC)),
        ("7d", datetime(2026, 4, 24, 2, tzinfo=UTC), datetime(2026, 5, 1, 2, tzinfo=UTC)),
        ("1y", datetime(2025, 4, 30, 16, tzinfo=UTC), datetime(2026, 5, 1, 2, tzinfo=UTC)),
    ],
)
def test_periods(text: str, start: datetime, end: datetime) -> None:
    now = datetime(2026, 5, 1, 2, tzinfo=UTC)
    assert parse_period(text, now, ZONE, 30) == Period(start, end)


@pytest.mark.parametrize("text", ["0d", "last week", "2026-13", "2026-04-02..2026-04-01", "99999m"])
def test_bad_periods(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(text, datetime(2026, 5, 1, tzinfo=UTC), ZONE, 30)
