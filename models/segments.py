"""Each customer's latest classification: RFM, ABC class, tier and churn risk, with reasons."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import Money, UTCDateTime


class SegmentSnapshot(Base):
    __tablename__ = "customer_segments"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    recency_days: Mapped[int | None] = mapped_column(Integer)
    frequency: Mapped[int] = mapped_column(Integer, default=0)
    monetary: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    r_score: Mapped[int | None] = mapped_column(Integer)
    f_score: Mapped[int | None] = mapped_column(Integer)
    m_score: Mapped[int | None] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(String(32))
    abc_class: Mapped[str] = mapped_column(String(1))
    tier: Mapped[str] = mapped_column(String(32))
    churn_probability: Mapped[float | None] = mapped_column(Float)
    risk_reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_customer_segments_segment", "segment"),
        Index("ix_customer_segments_tier", "tier"),
        Index("ix_customer_segments_abc", "abc_class"),
    )
