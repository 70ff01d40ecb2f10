"""Feedback and complaints (反馈 / 投诉) as tickets, with every message in both directions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import UTCDateTime


class TicketKind(StrEnum):
    SUGGESTION = "suggestion"
    COMPLAINT = "complaint"
    PRAISE = "praise"
    QUESTION = "question"


class TicketStatus(StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    CLOSED = "closed"


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.OPEN)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id"))
    staff_chat_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    csat: Mapped[int | None] = mapped_column(Integer)
    # What went wrong, in the customer's words, after a low rating.
    csat_comment: Mapped[str | None] = mapped_column(Text)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_tickets_status_created", "status", "created_at"),
        Index("ix_tickets_customer_status", "customer_id", "status"),
    )


class TicketMessage(Base):
    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    author: Mapped[str] = mapped_column(String(16))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id"))
    text: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    customer_message_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_chat_message_id: Mapped[int | None] = mapped_column(BigInteger)
    delivered: Mapped[bool | None] = mapped_column(Boolean)
    delivery_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_ticket_messages_ticket", "ticket_id", "created_at"),
        Index("ix_ticket_messages_staff_chat_message", "staff_chat_message_id"),
    )
