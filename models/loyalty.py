"""Purchases and the points ledger (积分): the balance is the ledger's sum, never stored."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import Money, UTCDateTime


class Purchase(Base):
    __tablename__ = "purchases"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Null while the sale waits for a customer to share the phone it was recorded under.
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    phone: Mapped[str | None] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(128), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    store: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    refund_of_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # Holding the amount lets the nightly classification read from the index alone.
        Index("ix_purchases_customer_occurred_amount", "customer_id", "occurred_at", "amount"),
        # Only sales waiting for their customer are looked up by phone (when one shares it).
        Index(
            "ix_purchases_phone_unlinked",
            "phone",
            sqlite_where=text("customer_id IS NULL"),
            postgresql_where=text("customer_id IS NULL"),
        ),
        # A refund asks what its sale has refunded already; only refunds are in it.
        Index(
            "ix_purchases_refund_of",
            "refund_of_id",
            sqlite_where=text("refund_of_id IS NOT NULL"),
            postgresql_where=text("refund_of_id IS NOT NULL"),
        ),
        Index("ix_purchases_occurred_at", "occurred_at"),
    )


class PointsEntry(Base):
    __tablename__ = "points_ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(128))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    actor_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_points_ledger_customer_created", "customer_id", "created_at"),
        # What a sale earned: asked by each refund and each sale recorded again.
        Index(
            "ix_points_ledger_purchase",
            "purchase_id",
            sqlite_where=text("purchase_id IS NOT NULL"),
            postgresql_where=text("purchase_id IS NOT NULL"),
        ),
    )
