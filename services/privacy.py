"""Privacy: a customer's copy of everything stored about them, and erasure on request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, or_, select, update

from models import (
    Coupon,
    Customer,
    InboxUpdate,
    OutboxMessage,
    OutboxStatus,
    PointsEntry,
    Purchase,
    RecoveryOffer,
    SegmentSnapshot,
    Survey,
    SurveyAnswer,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
    TicketMessage,
)
from models.database import Database
from models.staff import CUSTOMER_ERASED
from services.audit import record_audit
from services.clock import Clock
from services.loyalty import balance_of

# Update kinds whose sender is the customer: the raw updates kept in the inbox.
_UPDATE_KINDS = ("message", "edited_message", "callback_query", "my_chat_member")


@dataclass(frozen=True)
class Erasure:
    """What the bot side still has to tidy after an erasure."""

    customer_id: int
    telegram_id: int | None
    chat_id: int | None


def _plain(value: Any) -> Any:
    """A value as JSON can hold it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row(obj: Any, *names: str) -> dict[str, Any]:
    return {name: _plain(getattr(obj, name)) for name in names}


class Privacy:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def export(self, customer_id: int) -> dict[str, Any]:
        """Everything stored about the customer, as plain JSON-ready data."""
        async with self.db.session() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                raise LookupError(customer_id)
            purchases = await session.scalars(
                select(Purchase).where(Purchase.customer_id == customer_id).order_by(Purchase.id)
            )
            ledger = await session.scalars(
                select(PointsEntry)
                .where(PointsEntry.customer_id == customer_id)
                .order_by(PointsEntry.id)
            )
            coupons = await session.scalars(
                select(Coupon).where(Coupon.customer_id == customer_id).order_by(Coupon.id)
            )
            tickets = list(
                await session.scalars(
                    select(Ticket).where(Ticket.customer_id == customer_id).order_by(Ticket.id)
                )
            )
            messages = list(
                await session.scalars(
                    select(TicketMessage)
                    .where(TicketMessage.ticket_id.in_([t.id for t in tickets]))
                    .order_by(TicketMessage.id)
                )
            )
            offers = list(
                await session.scalars(
                    select(RecoveryOffer).where(RecoveryOffer.customer_id == customer_id)
                )
            )
            responses = list(
                await session.scalars(
                    select(SurveyResponse)
                    .where(SurveyResponse.customer_id == customer_id)
                    .order_by(SurveyResponse.id)
                )
            )
            answers = (
                await session.execute(
                    select(SurveyAnswer, SurveyQuestion, Survey)
                    .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
                    .join(Survey, Survey.id == SurveyQuestion.survey_id)
                    .where(SurveyAnswer.response_id.in_([r.id for r in responses]))
                    .order_by(SurveyAnswer.id)
                )
            ).all()
            keys = {
                s.id: s.key
                for s in await session.scalars(
                    select(Survey).where(Survey.id.in_({r.survey_id for r in responses}))
                )
            }
            snapshot = await session.get(SegmentSnapshot, customer_id)
            sent = await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.customer_id == customer_id)
                .order_by(OutboxMessage.id)
            )
            balance = await balance_of(session, customer_id)
            return {
                "exported_at": self.clock.now().isoformat(),
                "profile": _row(
                    customer,
                    "id",
                    "telegram_id",
                    "username",
                    "name",
                    "phone",
                    "birthday",
                    "locale",
                    "region",
                    "source",
                    "notes",
                    "marketing_opt_in",
                    "reachable",
                    "created_at",
                    "last_seen_at",
                    "erased_at",
                ),
                "points_balance": balance,
                "points_ledger": [
                    _row(e, "created_at", "delta", "reason", "reference", "expires_at")
                    for e in ledger
                ],
                "purchases": [
                    _row(p, "reference", "amount", "currency", "occurred_at", "store", "channel")
                    for p in purchases
                ],
                "coupons": [
                    _row(c, "code", "reward_key", "cost", "source", "status", "created_at")
                    for c in coupons
                ],
                "tickets": [
                    {
                        **_row(
                            t,
                            "id",
                            "kind",
                            "status",
                            "created_at",
                            "first_response_at",
                            "closed_at",
                            "csat",
                            "csat_comment",
                        ),
                        "messages": [
                            {
                                **_row(m, "author", "text", "created_at", "delivered"),
                                "attachments": [a.get("kind") for a in m.attachments or []],
                            }
                            for m in messages
                            if m.ticket_id == t.id
                        ],
                        "apology": [
                            _row(o, "kind", "points", "reward_key", "status", "granted_at")
                            for o in offers
                            if o.ticket_id == t.id
                        ],
                    }
                    for t in tickets
                ],
                "survey_responses": [
                    {
                        **_row(r, "instance", "status", "started_at", "completed_at"),
                        "survey": keys.get(r.survey_id),
                        "answers": [
                            {
                                "question": question.text,
                                "kind": question.kind,
                                "value": answer.value,
                                "text": answer.text,
                            }
                            for answer, question, _ in answers
                            if answer.response_id == r.id
                        ],
                    }
                    for r in responses
                ],
                "classification": _row(
                    snapshot,
                    "segment",
                    "abc_class",
                    "tier",
                    "churn_probability",
                    "risk_reasons",
                    "computed_at",
                )
                if snapshot
                else None,
                "messages_from_us": [
                    _row(o, "kind", "text", "status", "created_at", "sent_at") for o in sent
                ],
            }

    async def erase(self, customer_id: int) -> Erasure | None:
        """Erase the customer's personal data: who they are and what they wrote. Purchases,
        points and survey scores stay, anonymous, so the shop's figures do not change.
        None when there was nothing to erase."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await session.get(Customer, customer_id, with_for_update=True)
            if customer is None or customer.is_erased:
                return None
            erasure = Erasure(customer.id, customer.telegram_id, customer.chat_id)
            for name in (
                "telegram_id",
                "chat_id",
                "username",
                "name",
                "phone",
                "birthday",
                "region",
                "source",
                "notes",
            ):
                setattr(customer, name, None)
            customer.marketing_opt_in = False
            customer.reachable = False
            customer.erased_at = now
            await session.execute(
                update(Purchase).where(Purchase.customer_id == customer_id).values(phone=None)
            )
            tickets = select(Ticket.id).where(Ticket.customer_id == customer_id)
            await session.execute(
                update(TicketMessage)
                .where(TicketMessage.ticket_id.in_(tickets))
                .values(text=None, attachments=None)
            )
            await session.execute(
                update(Ticket).where(Ticket.customer_id == customer_id).values(csat_comment=None)
            )
            await session.execute(
                update(SurveyAnswer)
                .where(
                    SurveyAnswer.response_id.in_(
                        select(SurveyResponse.id).where(SurveyResponse.customer_id == customer_id)
                    )
                )
                .values(text=None)
            )
            await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.customer_id == customer_id,
                    OutboxMessage.status == OutboxStatus.PENDING,
                )
                .values(status=OutboxStatus.SKIPPED, last_error="customer erased")
            )
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.customer_id == customer_id)
                .values(text="", reply_markup=None)
            )
            if erasure.telegram_id is not None:
                # The raw updates they sent, kept for redelivery, hold their name and words.
                await session.execute(
                    delete(InboxUpdate).where(
                        or_(
                            *(
                                InboxUpdate.payload[(kind, "from", "id")].as_integer()
                                == erasure.telegram_id
                                for kind in _UPDATE_KINDS
                            )
                        )
                    )
                )
            # That it happened and to which customer id; nothing of who they were.
            record_audit(
                session,
                at=now,
                actor=None,
                action=CUSTOMER_ERASED,
                target_type="customer",
                target_id=customer_id,
            )
            return erasure
