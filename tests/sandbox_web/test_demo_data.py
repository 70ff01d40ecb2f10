"""Demo data: a seeded shop whose points, birthdays, tickets and surveys hold together."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from bot.cli import app as cli
from models import (
    Customer,
    PointsEntry,
    Purchase,
    SurveyAnswer,
    SurveyResponse,
    Ticket,
    TicketMessage,
)
from models.database import Database
from services.clock import FrozenClock
from services.demo import ARCHETYPES, DemoDataPresent, seed_demo
from services.loyalty import Loyalty
from services.phones import normalize_phone
from services.policy import Policy

ZONE = ZoneInfo("Asia/Shanghai")


async def test_every_kind_of_customer_is_there_with_a_plausible_history(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    summary = await seed_demo(db, policy, clock, customers=300, seed=1, timezone=ZONE)
    assert summary.customers == 300
    assert set(summary.by_archetype) == {a.key for a in ARCHETYPES}
    async with db.session() as session:
        customers = list(await session.scalars(select(Customer)))
        purchases = list(await session.scalars(select(Purchase)))
    assert len(customers) == 300 and len(purchases) == summary.purchases + summary.refunds
    phones = [c.phone for c in customers]
    assert len(set(phones)) == 300
    assert all(p == normalize_phone(p or "", "CN") for p in phones)
    assert all(p.occurred_at <= clock.now() for p in purchases)
    assert all(c.telegram_id is None for c in customers)  # like a shop's own list
    buyers = Counter(p.customer_id for p in purchases if p.amount > 0)
    assert 0 < len(buyers) < 300  # "potential" customers have bought nothing yet
    refunds = [p for p in purchases if p.amount < 0]
    assert refunds and all(p.refund_of_id is not None for p in refunds)


async def test_points_are_what_the_loyalty_service_would_have_credited(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    await seed_demo(db, policy, clock, customers=120, seed=5, timezone=ZONE)
    loyalty = Loyalty(db, policy, clock)
    async with db.sessions() as session:
        transaction = await session.begin()
        seeded = {
            (row.customer_id, row.purchase_id): row.delta
            for row in await session.scalars(select(PointsEntry))
        }
        assert seeded
        await session.execute(delete(PointsEntry))
        owners = await session.scalars(select(Purchase.customer_id).distinct())
        for customer_id in list(owners):
            assert customer_id is not None
            history = list(
                await session.scalars(select(Purchase).where(Purchase.customer_id == customer_id))
            )
            await loyalty.credit_purchases(session, customer_id, history)
        recomputed = {
            (row.customer_id, row.purchase_id): row.delta
            for row in await session.scalars(select(PointsEntry))
        }
        await transaction.rollback()
    assert recomputed == seeded


async def test_the_same_seed_gives_the_same_shop(
    db: Database, policy: Policy, clock: FrozenClock, sqlite_template: Path, tmp_path: Path
) -> None:
    other_path = tmp_path / "other.db"
    shutil.copy(sqlite_template, other_path)
    other = Database(f"sqlite+aiosqlite:///{other_path}")
    try:
        shops = []
        for database in (db, other):
            await seed_demo(database, policy, clock, customers=50, seed=9, timezone=ZONE)
            async with database.session() as session:
                people = (
                    await session.execute(
                        select(Customer.name, Customer.phone, Customer.birthday).order_by(
                            Customer.id
                        )
                    )
                ).all()
                sales = (
                    await session.execute(
                        select(Purchase.reference, Purchase.amount, Purchase.occurred_at).order_by(
                            Purchase.reference
                        )
                    )
                ).all()
            shops.append((people, sales))
    finally:
        await other.close()
    assert shops[0] == shops[1]


async def test_birthdays_fall_this_week_and_tickets_and_surveys_are_there(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    summary = await seed_demo(db, policy, clock, customers=200, seed=2, timezone=ZONE)
    today = clock.now().astimezone(ZONE).date()
    week = {((today + timedelta(days=d)).month, (today + timedelta(days=d)).day) for d in range(7)}
    async with db.session() as session:
        birthdays = [
            c.birthday for c in await session.scalars(select(Customer)) if c.birthday is not None
        ]
        tickets = list(await session.scalars(select(Ticket)))
        messages = await session.scalar(select(func.count()).select_from(TicketMessage))
        responses = await session.scalar(select(func.count()).select_from(SurveyResponse))
        answers = await session.scalar(select(func.count()).select_from(SurveyAnswer))
    assert sum((b.month, b.day) in week for b in birthdays) >= summary.birthdays_this_week >= 3
    assert len(tickets) == summary.tickets
    open_ = [t for t in tickets if t.status == "open"]
    assert len(open_) == summary.open_tickets > 0
    assert any(
        clock.now() - t.created_at > timedelta(minutes=policy.service.sla_minutes) for t in open_
    )
    closed = [t for t in tickets if t.status == "closed"]
    assert closed and all(t.csat is not None and t.first_response_at for t in closed)
    assert messages and messages >= len(tickets)
    assert responses == summary.survey_responses > 0 and answers


async def test_telegram_ids_are_given_only_when_asked_and_data_loads_once(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    summary = await seed_demo(db, policy, clock, customers=60, seed=4, telegram_base=7_000_000)
    assert summary.on_telegram
    async with db.session() as session:
        linked = list(
            await session.scalars(select(Customer).where(Customer.telegram_id.is_not(None)))
        )
    assert len(linked) == len(summary.on_telegram)
    assert all(c.chat_id == c.telegram_id and c.telegram_id > 7_000_000 for c in linked)
    with pytest.raises(DemoDataPresent):
        await seed_demo(db, policy, clock, customers=10)


def test_the_cli_fills_an_empty_database_and_refuses_a_used_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here, and the SQLite file lands here
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}")
    runner = CliRunner()
    first = runner.invoke(cli, ["demo-data", "--customers", "25", "--seed", "2"])
    assert first.exit_code == 0, first.output
    assert "25 customers" in first.output
    again = runner.invoke(cli, ["demo-data", "--customers", "25"])
    assert again.exit_code == 2
    assert "already has 25 customers" in again.output
