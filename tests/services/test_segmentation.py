"""The nightly classification: a snapshot per customer with RFM segment, ABC class, tier
and churn risk, the reasons staff see, and the churn model fitted once there is history."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from models import Customer, SegmentSnapshot
from models.database import Database
from services import segmentation
from services.clock import FrozenClock
from services.policy import Policy
from tests.services.outreach_helpers import Shop, local, shop


@pytest.fixture
def care(db: Database, policy: Policy, clock: FrozenClock) -> Shop:
    clock.set(local("2026-05-01 03:00"))
    return shop(db, policy, clock)


async def snapshots(care: Shop) -> dict[int, SegmentSnapshot]:
    async with care.db.session() as session:
        return {s.customer_id: s for s in await session.scalars(select(SegmentSnapshot))}


async def test_every_customer_gets_a_snapshot_with_reasons(care: Shop, clock: FrozenClock) -> None:
    now = clock.now()
    steady = await care.customer("Ste")
    for weeks in (20, 17, 14):
        await care.buys(steady, "200", now - timedelta(weeks=weeks))
    unhappy = await care.customer("Unh")
    await care.buys(unhappy, "1200", now - timedelta(days=5))
    await care.ticket(unhappy, kind="complaint", opened=now - timedelta(days=10))
    await care.ticket(unhappy, kind="complaint", opened=now - timedelta(days=3))
    await care.ticket(
        unhappy, opened=now - timedelta(days=9), closed=now - timedelta(days=8), csat=1
    )
    gone = await care.customer("Gon")
    await care.buys(gone, "50", now - timedelta(days=500))
    browser = await care.customer("Bro")
    erased = await care.customer("Era", erased=True)

    report = await care.jobs.segmentation.run()

    shots = await snapshots(care)
    assert set(shots) == {steady.id, unhappy.id, gone.id, browser.id}
    assert erased.id not in shots
    assert all(s.computed_at == now for s in shots.values())
    assert shots[browser.id].segment == "potential" and shots[browser.id].churn_probability is None
    assert shots[gone.id].segment == "lost" and shots[gone.id].recency_days == 500
    assert shots[unhappy.id].tier == "key" and shots[unhappy.id].abc_class == "A"
    assert shots[steady.id].recency_days == 98 and shots[steady.id].frequency == 3
    assert shots[steady.id].risk_reasons == [{"code": "silence", "days": 98, "usual": 21}]
    assert shots[steady.id].churn_probability == pytest.approx(0.8)
    assert shots[unhappy.id].risk_reasons == [
        {"code": "complaints", "count": 2},
        {"code": "low_rating", "score": 1},
    ]
    assert shots[unhappy.id].churn_probability == pytest.approx(0.3)
    assert not report.model.fitted and "30 needed" in (report.model.reason or "")
    assert (report.customers, report.buyers) == (4, 2)
    assert report.segments["potential"] == 1 and sum(report.segments.values()) == 4


async def test_the_churn_model_is_fitted_on_enough_history(care: Shop, clock: FrozenClock) -> None:
    rng = random.Random(7)
    now = clock.now()
    for n in range(60):
        customer = await care.customer(f"C{n}")
        first = rng.randint(30, 700)
        day = first
        while day > 0:
            await care.buys(customer, str(rng.randint(20, 400)), now - timedelta(days=day))
            day -= rng.randint(5, 120)
            if rng.random() < 0.15:
                break

    report = await care.jobs.segmentation.run()

    assert report.model.fitted and report.model.customers == 60
    assert report.model.r is not None and report.model.log_likelihood is not None
    shots = await snapshots(care)
    risks = [s.churn_probability for s in shots.values()]
    assert all(r is not None and 0 <= r <= 1 for r in risks)
    assert any(reason["code"] == "model" for s in shots.values() for reason in s.risk_reasons or [])
    assert sum(c.customers for c in report.abc) == report.buyers
    assert sum(c.revenue_share for c in report.abc) == pytest.approx(1)


async def test_a_rerun_replaces_the_snapshots(care: Shop, clock: FrozenClock) -> None:
    ann = await care.customer("Ann")
    bob = await care.customer("Bob")
    await care.jobs.segmentation.run()
    await care.buys(ann, "1500")
    async with care.db.transaction() as session:
        await session.execute(
            update(Customer).where(Customer.id == bob.id).values(erased_at=clock.now())
        )
    clock.advance(timedelta(days=1))

    await care.jobs.segmentation.run()

    shots = await snapshots(care)
    assert set(shots) == {ann.id}
    assert shots[ann.id].tier == "key" and shots[ann.id].computed_at == clock.now()


async def test_figures_follow_the_shops_calendar_and_net_out_refunds(
    care: Shop, clock: FrozenClock
) -> None:
    ann = await care.customer("Ann")
    late = await care.buys(ann, "100", local("2026-04-10 23:30"))
    await care.buys(ann, "50", local("2026-04-10 09:00"))
    # The same UTC day as the two above, but the next day in the shop's calendar.
    await care.buys(ann, "20", local("2026-04-11 00:30"))
    await care.refunds(ann, late, "30")

    report = await care.jobs.segmentation.run()

    shot = (await snapshots(care))[ann.id]
    assert (shot.frequency, shot.monetary, shot.recency_days) == (3, Decimal("140.00"), 20)
    assert shot.tier == "small" and report.buyers == 1
    assert shot.risk_reasons == [{"code": "silence", "days": 20, "usual": 1}]
    assert shot.churn_probability == pytest.approx(0.8)


async def test_sqlite_reads_in_processes_give_the_same_snapshots(
    care: Shop, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    if care.db.dialect != "sqlite":
        pytest.skip("the reads in processes of their own are SQLite's")
    rng = random.Random(11)
    now = clock.now()
    for n in range(40):
        customer = await care.customer(f"P{n}")
        for _ in range(rng.randint(0, 6)):
            amount = str(rng.choice([25, 80, 300, 1200]))
            await care.buys(customer, amount, now - timedelta(days=rng.randint(0, 800)))
    await care.customer("Era", erased=True)

    def figures(shots: dict[int, SegmentSnapshot]) -> dict[int, tuple[object, ...]]:
        names = ("recency_days", "frequency", "monetary", "segment", "abc_class", "tier")
        names += ("r_score", "f_score", "m_score", "churn_probability", "risk_reasons")
        return {cid: tuple(getattr(s, n) for n in names) for cid, s in shots.items()}

    monkeypatch.setattr(segmentation, "PROCESS_READS_FROM", 10**9)
    in_process = await care.jobs.segmentation.run()
    expected = figures(await snapshots(care))
    monkeypatch.setattr(segmentation, "PROCESS_READS_FROM", 0)
    in_processes = await care.jobs.segmentation.run()

    assert figures(await snapshots(care)) == expected
    assert len(expected) == 40
    assert in_processes.segments == in_process.segments and in_processes.tiers == in_process.tiers
