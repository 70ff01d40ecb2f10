"""Broadcast campaigns: who was targeted, with what, and how it went."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import UTCDateTime


class CampaignStatus(StrEnum):
    SENDING = "sending"
    DONE = "done"


class Campaign(Base):
    """One broadcast. Its messages are the outbox rows keyed `broadcast:<id>:<customer>`."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Names the confirmation it came from: pressing "send" twice makes one campaign.
    token: Mapped[str] = mapped_column(String(32), unique=True)
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    # A template name (broadcast_*) or, when staff wrote their own, the text itself.
    template: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(BigInteger)
    # The language progress and results are reported in: the one staff wrote in.
    locale: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.SENDING)
    audience_size: Mapped[int] = mapped_column(Integer, default=0)
    enqueued: Mapped[int] = mapped_column(Integer, default=0)
    # Where progress is reported: the chat the broadcast was confirmed in, and its message.
    report_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    report_thread_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[dict[str, int] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_campaigns_status", "status"),)
