"""What every job is handed: the database, policy, clock, renderer, outbox and services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

from models.database import Database
from services.birthdays import Birthdays
from services.clock import Clock
from services.digest import Digest
from services.escalations import Escalations
from services.followups import Followups
from services.invitations import Invitations
from services.jobruns import JobRuns
from services.loyalty import Loyalty
from services.outbox import Outbox
from services.outreach import Buttons, Gifts, Templates
from services.policy import Policy
from services.reports import Reports
from services.rewards import Rewards
from services.segmentation import Segmentation
from services.staff import Staff
from services.surveys import Surveys
from services.tickets import Tickets
from services.winback import Winback


class Drain(Protocol):
    """What the `sender` job needs: one pass over the outbox, how many were sent."""

    async def drain_once(self) -> int: ...


def _nothing() -> None:
    return None


@dataclass
class JobContext:
    db: Database
    policy: Policy
    clock: Clock
    zone: ZoneInfo
    renderer: Templates
    outbox: Outbox
    runs: JobRuns
    segmentation: Segmentation
    birthdays: Birthdays
    followups: Followups
    winback: Winback
    invitations: Invitations
    escalations: Escalations
    digest: Digest
    # The outbox sender, when this process has a bot to send with.
    sender: Drain | None = None
    # Tells a sender in this process that messages were enqueued.
    wake: Callable[[], None] = field(default=_nothing)


def build_context(
    *,
    db: Database,
    policy: Policy,
    clock: Clock,
    zone: ZoneInfo,
    renderer: Templates,
    buttons: Buttons,
    outbox: Outbox,
    staff_chat_id: int | None,
    owner_ids: frozenset[int],
    staff_locale: str,
    sender: Drain | None = None,
    wake: Callable[[], None] | None = None,
) -> JobContext:
    """The services the jobs call, wired once (`carebot run` and `carebot jobs run`)."""
    loyalty = Loyalty(db, policy, clock, outbox, renderer)
    rewards = Rewards(db, policy, clock, loyalty)
    tickets = Tickets(db, policy, clock, loyalty, rewards, outbox, renderer)
    gifts = Gifts(policy, loyalty, rewards)
    runs = JobRuns(db)
    winback = Winback(db, policy, clock, outbox, renderer, gifts)
    return JobContext(
        db=db,
        policy=policy,
        clock=clock,
        zone=zone,
        renderer=renderer,
        outbox=outbox,
        runs=runs,
        segmentation=Segmentation(db, policy, clock, zone),
        birthdays=Birthdays(db, policy, clock, zone, outbox, renderer, gifts),
        followups=Followups(db, policy, clock, zone, outbox, renderer),
        winback=winback,
        invitations=Invitations(db, policy, clock, outbox, renderer, Surveys(db, clock), buttons),
        escalations=Escalations(
            db,
            policy,
            clock,
            outbox,
            renderer,
            tickets,
            Staff(db, owner_ids, clock),
            staff_chat_id,
            staff_locale,
        ),
        digest=Digest(
            db,
            policy,
            clock,
            zone,
            outbox,
            renderer,
            Reports(db, policy, clock, zone),
            winback,
            runs,
            staff_chat_id,
            staff_locale,
        ),
        sender=sender,
        wake=wake or _nothing,
    )
