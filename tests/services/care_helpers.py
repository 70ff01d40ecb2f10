"""Builders shared by the customer-care service tests: services on the test database,
customers, and points from purchases."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from models.database import Database
from services.clock import FrozenClock
from services.customers import Customers, TelegramProfile
from services.loyalty import Loyalty, Sale
from services.outbox import Outbox
from services.policy import Policy
from services.rewards import Rewards
from services.surveys import Surveys
from services.tickets import Tickets

_references = itertools.count(1)


class Words:
    """A renderer that names the template and its locale, enough to check what was said."""

    def render(self, template: str, locale: str, /, **context: Any) -> str:
        return f"{template}:{locale}"

    def label(self, key: str, locale: str) -> str:
        return key


@dataclass
class Care:
    db: Database
    policy: Policy
    clock: FrozenClock
    outbox: Outbox
    loyalty: Loyalty
    customers: Customers
    rewards: Rewards
    tickets: Tickets
    surveys: Surveys

    async def customer(self, telegram_id: int, name: str = "Alice", locale: str = "en") -> int:
        customer, _ = await self.customers.touch(
            TelegramProfile(
                telegram_id=telegram_id, chat_id=telegram_id, first_name=name, locale=locale
            )
        )
        return customer.id

    async def buys(self, customer_id: int, amount: str) -> int:
        result = await self.loyalty.record_purchase(
            Sale(
                reference=f"T-{next(_references)}-{customer_id}",
                amount=Decimal(amount),
                occurred_at=self.clock.now(),
                channel="test",
                customer_id=customer_id,
            )
        )
        assert result.balance is not None
        return result.balance


def care(db: Database, policy: Policy, clock: FrozenClock) -> Care:
    outbox = Outbox(db, clock)
    loyalty = Loyalty(db, policy, clock, outbox, Words())
    customers = Customers(db, policy, clock, loyalty)
    rewards = Rewards(db, policy, clock, loyalty)
    tickets = Tickets(db, policy, clock, loyalty, rewards, outbox, Words())
    return Care(db, policy, clock, outbox, loyalty, customers, rewards, tickets, Surveys(db, clock))
