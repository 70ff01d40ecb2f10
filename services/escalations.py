"""SLA escalation: tickets still without a first staff answer past the SLA raise an alert
in the staff group naming the ticket and its age; past the policy's multiple of the SLA
(2× by default), a second, louder alert that calls every admin and owner by name.

Each alert is an outbox row keyed `sla:<ticket>:<level>`, and the ticket's
`escalation_level` is raised in the same transaction, so every level is raised once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from models import Customer, Role, Ticket
from models.database import Database
from services.clock import Clock
from services.outbox import Outbox, Outgoing, Render
from services.policy import Policy
from services.staff import Member, Staff
from services.tickets import Tickets, TicketView

KIND = "sla"
# How much of the customer's first message an alert quotes.
QUOTE = 200


def alert_key(ticket_id: int, level: int) -> str:
    return f"{KIND}:{ticket_id}:{level}"


@dataclass(frozen=True)
class Alert:
    ticket: TicketView
    level: int  # 1: past the SLA; 2: past the escalation multiple
    minutes: int  # how long the ticket has waited

    @property
    def key(self) -> str:
        return alert_key(self.ticket.id, self.level)


@dataclass(eq=False)
class Escalations:
    db: Database
    policy: Policy
    clock: Clock
    outbox: Outbox
    render: Render
    tickets: Tickets
    staff: Staff
    chat_id: int | None
    locale: str

    async def due(self) -> list[Alert]:
        """The alerts not raised yet: the highest level each waiting ticket has reached."""
        now = self.clock.now()
        loud = timedelta(minutes=self.policy.service.sla_minutes) * (
            self.policy.service.escalation_multiplier
        )
        alerts = [
            Alert(
                ticket,
                2 if now - ticket.created_at >= loud else 1,
                int((now - ticket.created_at).total_seconds() // 60),
            )
            for ticket in await self.tickets.overdue()
        ]
        done = await self.outbox.present(a.key for a in alerts)
        return [a for a in alerts if a.key not in done]

    async def send(self) -> int:
        """Alert the staff group; how many alerts were enqueued. Nothing without a group."""
        if self.chat_id is None:
            return 0
        alerts = await self.due()
        if not alerts:
            return 0
        admins = [m for m in await self.staff.members() if m.role.at_least(Role.ADMIN)]
        async with self.db.transaction() as session:
            names = dict(
                (
                    await session.execute(
                        select(Customer.id, Customer.name).where(
                            Customer.id.in_({a.ticket.customer_id for a in alerts})
                        )
                    )
                ).all()
            )
            messages = [self._message(a, names.get(a.ticket.customer_id), admins) for a in alerts]
            enqueued = await self.outbox.enqueue(messages, session=session)
            for alert in alerts:
                await session.execute(
                    update(Ticket)
                    .where(Ticket.id == alert.ticket.id, Ticket.escalation_level < alert.level)
                    .values(escalation_level=alert.level)
                )
        return enqueued

    def _message(self, alert: Alert, customer: str | None, admins: list[Member]) -> Outgoing:
        ticket = alert.ticket
        text = self.render.render(
            "staff_sla_escalation" if alert.level == 2 else "staff_sla_alert",
            self.locale,
            ticket=ticket,
            customer=customer,
            minutes=alert.minutes,
            sla_minutes=self.policy.service.sla_minutes,
            quote=(ticket.text or "")[:QUOTE],
            admins=admins,
        )
        assert self.chat_id is not None
        return Outgoing(key=alert.key, chat_id=self.chat_id, text=text, kind=KIND)
