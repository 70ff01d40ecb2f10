"""The scheduled jobs: each picks through a service, enqueues to the outbox, says how many.

The names are a stable interface (`carebot jobs run <name>`): segmentation, followups,
birthdays, winback, surveys, sla, digest, sender.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jobs.context import JobContext

log = logging.getLogger("carebot.jobs")


@dataclass(frozen=True)
class Done:
    """How many messages a job enqueued (sent, for the sender; customers classified, for
    the segmentation), and what else it reports."""

    count: int
    details: dict[str, Any] | None = None


async def segmentation(ctx: JobContext) -> Done:
    report = await ctx.segmentation.run()
    return Done(report.customers, report.as_json())


async def followups(ctx: JobContext) -> Done:
    return Done(await ctx.followups.send())


async def birthdays(ctx: JobContext) -> Done:
    return Done(await ctx.birthdays.send())


async def winback(ctx: JobContext) -> Done:
    return Done(await ctx.winback.send())


async def surveys(ctx: JobContext) -> Done:
    return Done(await ctx.invitations.send())


async def sla(ctx: JobContext) -> Done:
    return Done(await ctx.escalations.send())


async def digest(ctx: JobContext) -> Done:
    return Done(await ctx.digest.send())


async def sender(ctx: JobContext) -> Done:
    if ctx.sender is None:
        raise JobUnavailable("the sender needs a bot: set BOT_TOKEN")
    return Done(await ctx.sender.drain_once())


class JobUnavailable(RuntimeError):
    """The job cannot run in this process (the sender without a bot)."""


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[JobContext], Awaitable[Done]]
    # What the count counts, for people: "enqueued", "sent", "classified".
    counts: str
    about: str
    # Whether the scheduler runs it (the sender runs continuously in `carebot run`).
    scheduled: bool = True


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("segmentation", segmentation, "classified", "RFM, ABC, tiers and churn risk"),
        Job("followups", followups, "enqueued", "tier follow-ups"),
        Job("birthdays", birthdays, "enqueued", "birthday greetings with gifts"),
        Job("winback", winback, "enqueued", "win-back offers to customers at risk"),
        Job("surveys", surveys, "enqueued", "post-purchase surveys and rating reminders"),
        Job("sla", sla, "enqueued", "staff alerts on tickets waiting past the SLA"),
        Job("digest", digest, "enqueued", "weekly KPI digest to the staff group"),
        Job("sender", sender, "sent", "sends the outbox", scheduled=False),
    )
}


async def run_job(ctx: JobContext, name: str) -> Done:
    """Run one job now, recorded in the job runs; a sender in this process is woken."""
    job = JOBS[name]
    run_id = await ctx.runs.started(name, ctx.clock.now())
    try:
        done = await job.run(ctx)
    except Exception as error:
        await ctx.runs.finished(run_id, error=f"{type(error).__name__}: {error}")
        raise
    await ctx.runs.finished(run_id, count=done.count, details=done.details)
    if done.count and job.counts == "enqueued":
        ctx.wake()
    log.info("job %s: %s %s", name, done.count, job.counts)
    return done
