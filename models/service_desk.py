"""The staff side of tickets: each customer's forum topic with its card, recovery offers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import UTCDateTime


class StaffTopic(Base):
    """A customer's topic in a staff forum group, opened by their pinned card."""

    __tablename__ = "staff_topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    thread_id: Mapped[int] = mapped_column(BigInteger)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # A digest of the card as last shown, so an unchanged card is not edited again.
    card_digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("chat_id", "customer_id"),
        UniqueConstraint("chat_id", "thread_id"),
    )


class OfferStatus(StrEnum):
    PROPOSED = "proposed"
    GRANTED = "granted"


class RecoveryOffer(Base):
    """The apology proposed to staff after a low rating, granted with one button."""

    __tablename__ = "recovery_offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int | None] = mapped_column(Integer)
    reward_key: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=OfferStatus.PROPOSED)
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))
    granted_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
