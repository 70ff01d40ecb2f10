"""Customers: created on first contact, linked to their phone with what waited under it."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from models import Customer, Purchase
from models.database import Database
from services.clock import FrozenClock
from services.customers import _BY_TELEGRAM, Customers, LinkStatus, TelegramProfile
from services.loyalty import Loyalty, balance_of
from services.policy import Policy

ALICE = TelegramProfile(telegram_id=1001, chat_id=1001, first_name="Alice", username="alice")


def service(db: Database, policy: Policy, clock: FrozenClock) -> Customers:
    return Customers(db, policy, clock, Loyalty(db, policy, clock))


async def add_purchase(
    db: Database,
    clock: FrozenClock,
    reference: str,
    amount: str,
    *,
    phone: str | None = None,
    customer_id: int | None = None,
    days_ago: int = 10,
) -> None:
    async with db.transaction() as session:
        session.add(
            Purchase(
                customer_id=customer_id,
                phone=phone,
                reference=reference,
                amount=Decimal(amount),
                currency="CNY",
                occurred_at=clock.now() - timedelta(days=days_ago),
                channel="api",
                created_at=clock.now(),
            )
        )


async def test_first_contact_creates_the_customer_once(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    customers = service(db, policy, clock)
    first, created = await customers.touch(ALICE)
    again, created_again = await customers.touch(ALICE)
    assert created and not created_again
    assert first.id == again.id
    assert (first.name, first.locale, first.marketing_opt_in, first.reachable) == (
        "Alice",
        "zh",
        True,
        True,
    )


async def test_the_read_on_every_update_gives_what_sqlalchemy_gives(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    """touch reads the customer through the driver itself; every column's value and type
    must be SQLAlchemy's (aware UTC times, dates, booleans), on SQLite and PostgreSQL."""
    customers = service(db, policy, clock)
    customer, _ = await customers.touch(ALICE)
    async with db.transaction() as session:
        stored = await session.get(Customer, customer.id)
        assert stored is not None
        stored.phone, stored.birthday, stored.region = "+8613800138000", date(1990, 5, 31), "华东"
        stored.notes, stored.source, stored.marketing_opt_in = "常客", "qr", False
        stored.erased_at = clock.now() - timedelta(microseconds=123457)
    statement = select(*Customer.__table__.c).where(Customer.telegram_id == ALICE.telegram_id)
    async with db.reading() as connection:
        row = (await connection.execute(statement)).one()
    expected = dict(row._mapping)
    read = await db.first_row(_BY_TELEGRAM, telegram_id=ALICE.telegram_id)
    assert read == expected
    assert read is not None
    assert [type(v) for v in read.values()] == [type(v) for v in expected.values()]
    assert read["erased_at"].tzinfo is not None and read["birthday"] == date(1990, 5, 31)
    assert await db.first_row(_BY_TELEGRAM, telegram_id=404) is None


async def test_a_blocked_customer_is_reachable_again_when_they_write(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    customers = service(db, policy, clock)
    await customers.touch(ALICE)
    assert await customers.set_reachable(ALICE.telegram_id, False)
    customer, _ = await customers.touch(ALICE)
    assert customer.reachable


async def test_phone_from_a_contact_card_is_stored_as_e164(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    customers = service(db, policy, clock)
    customer, _ = await customers.touch(ALICE)
    link = await customers.link_phone(customer.id, "8613800138000")
    assert (link.status, link.phone) == (LinkStatus.LINKED, "+8613800138000")
    stored = await customers.get(customer.id)
    assert stored is not None and stored.phone == "+8613800138000"


async def test_an_invalid_phone_changes_nothing(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    customers = service(db, policy, clock)
    customer, _ = await customers.touch(ALICE)
    assert (await customers.link_phone(customer.id, "12345")).status is LinkStatus.INVALID
    stored = await customers.get(customer.id)
    assert stored is not None and stored.phone is None


async def test_a_phone_held_by_another_telegram_user_is_refused(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    customers = service(db, policy, clock)
    alice, _ = await customers.touch(ALICE)
    bob, _ = await customers.touch(
        TelegramProfile(telegram_id=1002, chat_id=1002, first_name="Bob")
    )
    await customers.link_phone(alice.id, "+8613800138000")
    assert (await customers.link_phone(bob.id, "+8613800138000")).status is LinkStatus.TAKEN


async def test_purchases_waiting_under_the_phone_are_linked_and_earn_points(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    customers = service(db, policy, clock)
    await add_purchase(db, clock, "R-1", "250.00", phone="+8613800138000", days_ago=30)
    await add_purchase(db, clock, "R-2", "100.50", phone="+8613800138000", days_ago=5)
    await add_purchase(db, clock, "R-3", "999.00", phone="+8613900139000")
    customer, _ = await customers.touch(ALICE)
    link = await customers.link_phone(customer.id, "8613800138000")
    assert (link.purchases, link.points) == (2, 350)
    async with db.session() as session:
        assert await balance_of(session, customer.id) == 350
        owned = await session.scalar(
            select(func.count()).where(Purchase.customer_id == customer.id)
        )
        assert owned == 2


async def test_a_record_from_the_shops_list_is_merged_into_the_telegram_customer(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    async with db.transaction() as session:
        imported = Customer(
            phone="+8613800138000",
            name="王芳",
            locale="zh",
            marketing_opt_in=False,
            reachable=True,
            created_at=clock.now(),
            region="上海",
        )
        session.add(imported)
        await session.flush()
        imported_id = imported.id
    await add_purchase(db, clock, "R-9", "1200.00", customer_id=imported_id)
    customers = service(db, policy, clock)
    customer, _ = await customers.touch(ALICE)
    link = await customers.link_phone(customer.id, "+86 138 0013 8000")
    assert link.status is LinkStatus.LINKED
    merged = await customers.get(customer.id)
    assert merged is not None
    assert (merged.name, merged.region, merged.marketing_opt_in) == ("王芳", "上海", False)
    assert await customers.get(imported_id) is None
    async with db.session() as session:
        owner = await session.scalar(
            select(Purchase.customer_id).where(Purchase.reference == "R-9")
        )
    assert owner == customer.id


async def test_a_nul_character_in_a_name_is_stored_without_it(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    # PostgreSQL's text refuses NUL; Telegram names and messages can carry one.
    profile = TelegramProfile(telegram_id=1002, chat_id=1002, first_name="Bo\x00b", username=None)
    customer, created = await service(db, policy, clock).touch(profile)
    assert created
    async with db.session() as session:
        stored = await session.scalar(select(Customer.name).where(Customer.id == customer.id))
    assert stored is not None and stored.replace("\x00", "") == "Bob"
