"""Rewards (积分兑换): coupons issued for points or as an apology, and each reward's stock."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import UTCDateTime


class CouponStatus(StrEnum):
    ISSUED = "issued"
    USED = "used"


class Coupon(Base):
    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    reward_key: Mapped[str] = mapped_column(String(32))
    # Points paid for it; 0 for a coupon given by staff (service recovery, gifts).
    cost: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    # The confirmation it answers: pressing "confirm" twice yields this one coupon.
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=CouponStatus.ISSUED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_coupons_customer", "customer_id", "created_at"),)


class RewardStock(Base):
    """How many of a reward with a limited stock were issued; the limit is in the policy."""

    __tablename__ = "reward_stock"

    reward_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    issued: Mapped[int] = mapped_column(Integer, default=0)
