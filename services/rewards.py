"""Rewards (积分兑换): the catalogue, redeeming points for a coupon exactly once, coupons."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models import Coupon, CouponStatus, Customer, PointsEntry, RewardStock
from models.database import Database
from services.clock import Clock
from services.loyalty import Loyalty, balance_of, lock_customer
from services.policy import Policy, Reward

# No 0/O, 1/I/L: a code is read out at a counter and typed by hand.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_HALF = 4


def new_code() -> str:
    pick = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_HALF * 2))
    return f"{pick[:CODE_HALF]}-{pick[CODE_HALF:]}"


def normalize_code(text: str) -> str:
    """What a person typed ("abcd efgh", "ABCD-EFGH") as a stored code."""
    plain = "".join(ch for ch in text.upper() if ch.isalnum())
    return f"{plain[:CODE_HALF]}-{plain[CODE_HALF:]}" if len(plain) == CODE_HALF * 2 else plain


class RedeemStatus(StrEnum):
    REDEEMED = "redeemed"
    ALREADY = "already"  # this confirmation was carried out before: the same coupon
    NOT_ENOUGH = "not_enough"
    OUT_OF_STOCK = "out_of_stock"
    UNKNOWN = "unknown"


class OutOfStock(Exception):
    """The reward's stock is used up."""


@dataclass(frozen=True)
class CouponView:
    code: str
    reward_key: str
    reward: Reward | None
    cost: int
    source: str
    status: str
    created_at: datetime
    used_at: datetime | None
    customer_id: int
    customer_name: str | None
    customer_erased: bool


@dataclass(frozen=True)
class Redemption:
    status: RedeemStatus
    reward: Reward | None = None
    coupon: CouponView | None = None
    balance: int = 0

    @property
    def missing(self) -> int:
        """Points still needed when the balance fell short."""
        return max(0, self.reward.cost - self.balance) if self.reward else 0


@dataclass(frozen=True)
class CatalogueItem:
    reward: Reward
    left: int | None  # None: no stock limit
    affordable: bool


@dataclass(frozen=True)
class Catalogue:
    balance: int
    items: tuple[CatalogueItem, ...]


class Rewards:
    def __init__(self, db: Database, policy: Policy, clock: Clock, loyalty: Loyalty) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.loyalty = loyalty

    async def catalogue(self, customer_id: int) -> Catalogue:
        async with self.db.session() as session:
            balance = await balance_of(session, customer_id)
            issued = {
                row.reward_key: row.issued for row in await session.scalars(select(RewardStock))
            }
        items = tuple(
            CatalogueItem(
                reward,
                None if reward.stock is None else max(0, reward.stock - issued.get(reward.key, 0)),
                balance >= reward.cost,
            )
            for reward in self.policy.rewards
        )
        return Catalogue(balance, items)

    async def redeem(self, customer_id: int, reward_key: str, request_key: str) -> Redemption:
        """Spend the reward's cost for a coupon, in one transaction that holds the
        customer's row: two presses, two chats or two instances at once cannot spend the
        same points twice. `request_key` names the confirmation; carrying it out again
        answers with the coupon it already gave."""
        reward = self.policy.reward(reward_key)
        async with self.db.transaction() as session:
            customer = await lock_customer(session, customer_id)
            if customer is None:
                raise LookupError(customer_id)
            done = await session.scalar(select(Coupon).where(Coupon.request_key == request_key))
            if done is not None:
                balance = await balance_of(session, customer_id)
                return Redemption(
                    RedeemStatus.ALREADY,
                    self.policy.reward(done.reward_key),
                    self._view(done, customer),
                    balance,
                )
            if reward is None:
                return Redemption(RedeemStatus.UNKNOWN)
            await self.loyalty.settle_expiry(session, customer_id)
            balance = await balance_of(session, customer_id)
            if balance < reward.cost:
                return Redemption(RedeemStatus.NOT_ENOUGH, reward, balance=balance)
            try:
                coupon = await self.issue(
                    session,
                    customer,
                    reward,
                    source="reward",
                    cost=reward.cost,
                    request_key=request_key,
                )
            except OutOfStock:
                return Redemption(RedeemStatus.OUT_OF_STOCK, reward, balance=balance)
            session.add(
                PointsEntry(
                    customer_id=customer_id,
                    delta=-reward.cost,
                    reason="redeem",
                    reference=coupon.code,
                    created_at=self.clock.now(),
                )
            )
            await session.flush()
            return Redemption(
                RedeemStatus.REDEEMED, reward, self._view(coupon, customer), balance - reward.cost
            )

    async def issue(
        self,
        session: AsyncSession,
        customer: Customer,
        reward: Reward,
        *,
        source: str,
        cost: int = 0,
        request_key: str | None = None,
    ) -> Coupon:
        """A coupon for `reward` in the caller's transaction, taking one from its stock;
        raises OutOfStock when none is left. The caller charges the `cost` it records."""
        if not await self._take_stock(session, reward):
            raise OutOfStock(reward.key)
        while True:
            code = new_code()
            if await session.scalar(select(Coupon.id).where(Coupon.code == code)) is None:
                break
        coupon = Coupon(
            code=code,
            customer_id=customer.id,
            reward_key=reward.key,
            cost=cost,
            source=source,
            request_key=request_key,
            status=CouponStatus.ISSUED,
            created_at=self.clock.now(),
        )
        session.add(coupon)
        await session.flush()
        return coupon

    async def _take_stock(self, session: AsyncSession, reward: Reward) -> bool:
        if reward.stock is None:
            return True
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await session.execute(
            insert(RewardStock)
            .values(reward_key=reward.key, issued=0)
            .on_conflict_do_nothing(index_elements=["reward_key"])
        )
        # One conditional update: concurrent redemptions queue on the row, and each sees
        # the count the previous one left.
        taken = await session.execute(
            update(RewardStock)
            .where(RewardStock.reward_key == reward.key, RewardStock.issued < reward.stock)
            .values(issued=RewardStock.issued + 1)
        )
        return bool(getattr(taken, "rowcount", 0))

    async def coupons_of(self, customer_id: int) -> list[CouponView]:
        async with self.db.session() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                return []
            coupons = await session.scalars(
                select(Coupon)
                .where(Coupon.customer_id == customer_id)
                .order_by(Coupon.created_at.desc(), Coupon.id.desc())
            )
            return [self._view(c, customer) for c in coupons]

    async def find(self, code: str) -> CouponView | None:
        """A coupon by its code as a person typed it, for staff at the counter."""
        async with self.db.session() as session:
            coupon = await session.scalar(select(Coupon).where(Coupon.code == normalize_code(code)))
            if coupon is None:
                return None
            customer = await session.get(Customer, coupon.customer_id)
            assert customer is not None
            return self._view(coupon, customer)

    async def mark_used(self, code: str, staff_telegram_id: int) -> tuple[bool, CouponView | None]:
        """Record that a coupon was used; (whether this call did it, the coupon)."""
        async with self.db.transaction() as session:
            changed = await session.execute(
                update(Coupon)
                .where(Coupon.code == normalize_code(code), Coupon.status == CouponStatus.ISSUED)
                .values(
                    status=CouponStatus.USED, used_at=self.clock.now(), used_by=staff_telegram_id
                )
            )
        return bool(getattr(changed, "rowcount", 0)), await self.find(code)

    def _view(self, coupon: Coupon, customer: Customer) -> CouponView:
        return CouponView(
            code=coupon.code,
            reward_key=coupon.reward_key,
            reward=self.policy.reward(coupon.reward_key),
            cost=coupon.cost,
            source=coupon.source,
            status=coupon.status,
            created_at=coupon.created_at,
            used_at=coupon.used_at,
            customer_id=customer.id,
            customer_name=customer.name,
            customer_erased=customer.is_erased,
        )
