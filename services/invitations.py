"""Surveys the jobs send (满意度调查): a post-purchase survey some days after a purchase, at
most once per customer per policy period; a survey after a closed ticket when the policy
has one; and one reminder to rate a closed ticket the customer did not rate at close.

The survey itself is the surveys service's: an invitation is a response waiting for the
customer (`Surveys.invite`) and a message whose button opens it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select

from models import (
    Customer,
    OutboxMessage,
    Purchase,
    Survey,
    SurveyResponse,
    Ticket,
    TicketStatus,
)
from models.database import Database
from services.clock import Clock
from services.outbox import Outbox, Outgoing, Render
from services.outreach import Buttons, may_write
from services.policy import Policy, SurveySpec
from services.surveys import ResponseStatus, Surveys

SURVEY = "survey"
RATING = "csat"


def survey_key(subject: str) -> str:
    """`survey:purchase:<purchase>` or `survey:ticket:<ticket>`."""
    return f"{SURVEY}:{subject}"


def reminder_key(ticket_id: int) -> str:
    return f"csat_reminder:{ticket_id}"


@dataclass(eq=False)
class Invitations:
    db: Database
    policy: Policy
    clock: Clock
    outbox: Outbox
    render: Render
    surveys: Surveys
    buttons: Buttons

    async def send(self) -> int:
        """Every invitation and reminder due now; how many were enqueued."""
        return (
            await self.after_purchases()
            + await self.after_tickets()
            + await self.rating_reminders()
        )

    def _spec(self, trigger: str) -> SurveySpec | None:
        return next((s for s in self.policy.surveys if s.trigger == trigger), None)

    def _not_surveyed_lately(self) -> ColumnElement[bool]:
        since = self.clock.now() - timedelta(days=self.policy.survey_invitations.period_days)
        return Customer.id.not_in(
            select(OutboxMessage.customer_id).where(
                OutboxMessage.kind == SURVEY,
                OutboxMessage.created_at >= since,
                OutboxMessage.customer_id.is_not(None),
            )
        )

    async def after_purchases(self) -> int:
        """The post-purchase survey for the newest purchase, not refunded, made `delay_days`
        ago (give or take the window) by customers not surveyed within the period."""
        spec = self._spec("purchase")
        if spec is None:
            return 0
        rules = self.policy.survey_invitations
        latest = self.clock.now() - timedelta(days=rules.delay_days)
        earliest = latest - timedelta(days=rules.window_days)
        # A refund comes after its sale: only refunds since the window began can touch it.
        refunded = select(Purchase.refund_of_id).where(
            Purchase.refund_of_id.is_not(None), Purchase.occurred_at > earliest
        )
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Purchase.id, Customer)
                    .join(Customer, Customer.id == Purchase.customer_id)
                    .where(
                        *may_write(marketing=False),
                        Purchase.amount > 0,
                        Purchase.occurred_at <= latest,
                        Purchase.occurred_at > earliest,
                        Purchase.id.not_in(refunded),
                        self._not_surveyed_lately(),
                    )
                    .order_by(Purchase.occurred_at.desc(), Purchase.id.desc())
                )
            ).all()
        newest: dict[int, tuple[int, Customer]] = {}
        for purchase_id, customer in rows:
            newest.setdefault(customer.id, (purchase_id, customer))
        return await self._invite_all(
            spec, [(customer, f"purchase:{pid}") for pid, customer in newest.values()]
        )

    def _closed_window(self) -> tuple[datetime, datetime]:
        rules = self.policy.survey_invitations
        latest = self.clock.now() - timedelta(hours=rules.csat_reminder_hours)
        return latest - timedelta(days=rules.window_days), latest

    async def after_tickets(self) -> int:
        """A survey with trigger "ticket", when the policy has one, after a closed ticket."""
        spec = self._spec("ticket")
        if spec is None:
            return 0
        earliest, latest = self._closed_window()
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Ticket.id, Customer)
                    .join(Customer, Customer.id == Ticket.customer_id)
                    .where(
                        *may_write(marketing=False),
                        Ticket.status == TicketStatus.CLOSED,
                        Ticket.closed_at > earliest,
                        Ticket.closed_at <= latest,
                        self._not_surveyed_lately(),
                    )
                    .order_by(Ticket.closed_at.desc(), Ticket.id.desc())
                )
            ).all()
        newest: dict[int, tuple[int, Customer]] = {}
        for ticket_id, customer in rows:
            newest.setdefault(customer.id, (ticket_id, customer))
        return await self._invite_all(
            spec, [(customer, f"ticket:{tid}") for tid, customer in newest.values()]
        )

    async def _invite_all(self, spec: SurveySpec, due: list[tuple[Customer, str]]) -> int:
        """Invite each customer to answer about `subject`, then enqueue the invitations."""
        messages = []
        for customer, subject in due:
            response_id = await self.surveys.invite(customer.id, spec.key, subject)
            if response_id is None:
                # Invited before (a run stopped between the invitation and its message),
                # or the survey is closed: only an unanswered invitation gets its message.
                response_id = await self._unanswered(customer.id, spec.key, subject)
                if response_id is None:
                    continue
            locale = customer.locale
            text = self.render.render(
                "survey_invitation",
                locale,
                name=customer.name or "",
                shop=self.policy.shop.name(locale),
                title=spec.title(locale),
                questions=len(spec.questions),
            )
            messages.append(
                Outgoing(
                    key=survey_key(subject),
                    chat_id=int(customer.chat_id or 0),
                    text=text,
                    kind=SURVEY,
                    customer_id=customer.id,
                    reply_markup=self.buttons.survey(response_id, locale),
                    quiet=True,
                )
            )
        return await self.outbox.enqueue(messages)

    async def _unanswered(self, customer_id: int, survey: str, instance: str) -> int | None:
        async with self.db.session() as session:
            return await session.scalar(
                select(SurveyResponse.id)
                .join(Survey, Survey.id == SurveyResponse.survey_id)
                .where(
                    Survey.key == survey,
                    SurveyResponse.customer_id == customer_id,
                    SurveyResponse.instance == instance,
                    SurveyResponse.status == ResponseStatus.INVITED,
                )
            )

    async def rating_reminders(self) -> int:
        """One reminder, with the rating buttons, for each closed ticket still unrated."""
        earliest, latest = self._closed_window()
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Ticket, Customer)
                    .join(Customer, Customer.id == Ticket.customer_id)
                    .where(
                        *may_write(marketing=False),
                        Ticket.status == TicketStatus.CLOSED,
                        Ticket.csat.is_(None),
                        Ticket.closed_at > earliest,
                        Ticket.closed_at <= latest,
                    )
                    .order_by(Ticket.id)
                )
            ).all()
        done = await self.outbox.present(reminder_key(ticket.id) for ticket, _ in rows)
        messages = [
            Outgoing(
                key=reminder_key(ticket.id),
                chat_id=int(customer.chat_id or 0),
                text=self.render.render(
                    "csat_reminder",
                    customer.locale,
                    name=customer.name or "",
                    ticket_id=ticket.id,
                    kind=ticket.kind,
                    closed_at=ticket.closed_at,
                ),
                kind=RATING,
                customer_id=customer.id,
                reply_markup=self.buttons.rating(ticket.id),
                quiet=True,
            )
            for ticket, customer in rows
            if reminder_key(ticket.id) not in done
        ]
        return await self.outbox.enqueue(messages)
