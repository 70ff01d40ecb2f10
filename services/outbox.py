"""The outbox: proactive messages are enqueued here once, by key, and drained by the sender.

Quiet hours are decided when a message is taken for sending, not when it is enqueued: a
message marked `quiet` is simply not handed to a sender while the policy's quiet hours
last in the business time zone. So a message enqueued just before quiet hours, or held up
by a 429 pause or a backlog, still never arrives at night, and nothing needs rescheduling
when the policy's hours change.

Crash safety: a row moves PENDING → SENDING (claimed, with a claim token) → SENT. A sender
re-checks its claim (`take`) immediately before calling Telegram and marks the row SENT
immediately after Telegram answers, each in its own short transaction. A process killed
at any point leaves its rows SENDING; they are claimed again after the claim timeout
(the policy's `sending.claim_timeout_seconds`) and sent. What can go out twice is only a
message whose request Telegram had accepted when the process died, before its row was
marked (the Bot API has no idempotency key): the messages in flight at that instant, one
per chat at most, and never more than a tenth of a second's worth (the sender holds no
more between `take` and the mark; 3 at 30 a second). A live sender never claims again a
row it still holds, however slow; another instance would, once the claim timeout passed
between `take` and the mark, which is why that timeout is minutes. A request that timed
out is retried like a server error: if Telegram had carried it out, that message arrives
twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models import Customer, OutboxMessage, OutboxStatus
from models.database import Database
from services.clock import Clock
from services.policy import Policy, QuietHours

# A row claimed by a sender that died is claimed again after this long.
CLAIM_TIMEOUT = timedelta(minutes=2)
# Server errors and timeouts are retried after 2, 4, 8 ... seconds, at most 10 minutes
# apart: 16 attempts ride out about an hour and a quarter of trouble at Telegram's end
# before a message is given up.
MAX_ATTEMPTS = 16


class Render(Protocol):
    """What services need of the template renderer (the bot's Renderer provides it)."""

    def render(self, template: str, locale: str, /, **context: Any) -> str: ...

    def label(self, key: str, locale: str) -> str: ...


@dataclass(frozen=True)
class Outgoing:
    """One message to enqueue. `key` makes it once-only: `birthday:<customer>:<year>`."""

    key: str
    chat_id: int
    text: str
    kind: str
    customer_id: int | None = None
    reply_markup: dict[str, Any] | None = None
    marketing: bool = False
    not_before: datetime | None = None
    # Proactive messages to customers wait out the quiet hours; staff alerts do not.
    quiet: bool = False
    # A PNG sent as a photo, `text` being its caption.
    photo: bytes | None = None


@dataclass(frozen=True)
class Claimed:
    id: int
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None
    customer_id: int | None
    marketing: bool
    attempts: int
    locale: str = "zh"
    blocked_reason: str | None = field(default=None)
    kind: str = ""
    photo: bytes | None = None
    claim_token: str = ""


class Outbox:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        quiet_hours: QuietHours | None = None,
        zone: ZoneInfo | None = None,
        claim_timeout: timedelta = CLAIM_TIMEOUT,
    ) -> None:
        self.db = db
        self.clock = clock
        self.quiet_hours = quiet_hours
        self.zone = zone or ZoneInfo("UTC")
        self.claim_timeout = claim_timeout

    @classmethod
    def for_policy(cls, db: Database, clock: Clock, policy: Policy, zone: ZoneInfo) -> Outbox:
        """The outbox with the policy's quiet hours (in `zone`) and claim timeout."""
        return cls(
            db,
            clock,
            quiet_hours=policy.quiet_hours,
            zone=zone,
            claim_timeout=timedelta(seconds=policy.sending.claim_timeout_seconds),
        )

    def is_quiet(self, at: datetime) -> bool:
        """Whether `at` falls in the business's quiet hours."""
        if self.quiet_hours is None:
            return False
        return self.quiet_hours.contains(at.astimezone(self.zone).time())

    async def enqueue(
        self, messages: Iterable[Outgoing], *, session: AsyncSession | None = None
    ) -> int:
        """Insert what is not there yet; how many were new. With `session`, joins the
        caller's transaction, so a message and the points it announces commit together."""
        now = self.clock.now()
        rows = [
            {
                "dedupe_key": m.key[:160],
                "customer_id": m.customer_id,
                "chat_id": m.chat_id,
                "kind": m.kind,
                "text": m.text,
                "reply_markup": m.reply_markup,
                "marketing": m.marketing,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "not_before": m.not_before or now,
                "created_at": now,
                "quiet": m.quiet,
                "photo": m.photo,
            }
            for m in messages
        ]
        if not rows:
            return 0
        if session is not None:
            return await self._insert(session, rows)
        async with self.db.transaction() as own:
            return await self._insert(own, rows)

    async def _insert(self, session: AsyncSession, rows: list[dict[str, Any]]) -> int:
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        table = cast(Table, OutboxMessage.__table__)
        # One statement executed with many rows: compiled once, sent in batches.
        statement = (
            insert(table)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(table.c.id)
        )
        return len((await session.execute(statement, rows)).all())

    async def present(self, keys: Iterable[str]) -> set[str]:
        """Which of these keys are enqueued already (whatever became of them)."""
        wanted = list(dict.fromkeys(k[:160] for k in keys))
        found: set[str] = set()
        async with self.db.session() as session:
            for start in range(0, len(wanted), 500):
                found.update(
                    await session.scalars(
                        select(OutboxMessage.dedupe_key).where(
                            OutboxMessage.dedupe_key.in_(wanted[start : start + 500])
                        )
                    )
                )
        return found

    async def claim(self, limit: int, *, busy: Collection[int] = ()) -> list[Claimed]:
        """Take up to `limit` due messages for sending. On PostgreSQL several senders share
        the outbox: SKIP LOCKED hands each row to one of them. Rows left SENDING by a
        sender that died are taken again after the claim timeout; `busy` are the ids this
        sender still has in hand, which it must not take again however slow they are."""
        now = self.clock.now()
        due = or_(
            and_(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.not_before <= now),
            and_(
                OutboxMessage.status == OutboxStatus.SENDING,
                OutboxMessage.not_before <= now - self.claim_timeout,
            ),
        )
        if self.is_quiet(now):
            due = and_(due, OutboxMessage.quiet.is_(False))
        if busy:
            due = and_(due, OutboxMessage.id.not_in(list(busy)))
        token = secrets.token_hex(8)
        query = select(OutboxMessage).where(due).order_by(OutboxMessage.id).limit(limit)
        if self.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        async with self.db.transaction() as session:
            rows = list(await session.scalars(query))
            if not rows:
                return []
            ids = [r.id for r in rows]
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(status=OutboxStatus.SENDING, not_before=now, claim_token=token)
            )
            people = {
                c.id: c
                for c in await session.scalars(
                    select(Customer).where(
                        Customer.id.in_({r.customer_id for r in rows if r.customer_id})
                    )
                )
            }
        claimed = []
        for row in rows:
            customer = people.get(row.customer_id) if row.customer_id else None
            claimed.append(
                Claimed(
                    id=row.id,
                    chat_id=row.chat_id,
                    text=row.text,
                    reply_markup=row.reply_markup,
                    customer_id=row.customer_id,
                    marketing=row.marketing,
                    attempts=row.attempts,
                    locale=customer.locale if customer else "zh",
                    blocked_reason=_why_not(customer, row.marketing),
                    kind=row.kind,
                    photo=row.photo,
                    claim_token=token,
                )
            )
        return claimed

    async def take(self, message: Claimed) -> bool:
        """Confirm the claim just before sending, renewing it; False when the row was taken
        over meanwhile (this sender stalled past the claim timeout) and must be left alone."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == message.id,
                    OutboxMessage.status == OutboxStatus.SENDING,
                    OutboxMessage.claim_token == message.claim_token,
                )
                .values(not_before=self.clock.now())
            )
            return bool(getattr(result, "rowcount", 0))

    async def sent(self, message_id: int, telegram_message_id: int) -> None:
        await self._finish(
            message_id,
            status=OutboxStatus.SENT,
            telegram_message_id=telegram_message_id,
            sent_at=self.clock.now(),
        )

    async def skipped(self, message_id: int, reason: str) -> None:
        await self._finish(message_id, status=OutboxStatus.SKIPPED, last_error=reason[:255])

    async def failed(self, message_id: int, reason: str) -> None:
        await self._finish(message_id, status=OutboxStatus.FAILED, last_error=reason[:255])

    async def retry_later(self, message_id: int, reason: str, attempts: int) -> None:
        """Back off exponentially; give up after MAX_ATTEMPTS."""
        if attempts + 1 >= MAX_ATTEMPTS:
            await self.failed(message_id, f"gave up after {attempts + 1} attempts: {reason}")
            return
        delay = timedelta(seconds=min(2 ** (attempts + 1), 600))
        await self._finish(
            message_id,
            status=OutboxStatus.PENDING,
            attempts=attempts + 1,
            last_error=reason[:255],
            not_before=self.clock.now() + delay,
        )

    async def postpone(self, ids: Sequence[int], until: datetime) -> None:
        """Hand claimed messages back untouched (a 429 pause, or shutting down)."""
        if not ids:
            return
        async with self.db.transaction() as session:
            await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_(list(ids)), OutboxMessage.status == OutboxStatus.SENDING
                )
                .values(status=OutboxStatus.PENDING, not_before=until)
            )

    async def depth(self) -> int:
        async with self.db.session() as session:
            count = await session.scalar(
                select(func.count()).where(OutboxMessage.status == OutboxStatus.PENDING)
            )
        return int(count or 0)

    async def _finish(self, message_id: int, **values: Any) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values)
            )


def _why_not(customer: Customer | None, marketing: bool) -> str | None:
    """Checked again at sending time: consent or reachability may have changed since."""
    if customer is None:
        return None
    if customer.is_erased:
        return "customer erased"
    if not customer.reachable:
        return "customer unreachable"
    if marketing and not customer.marketing_opt_in:
        return "customer opted out"
    return None
