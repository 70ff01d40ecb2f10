"""The weekly digest: the KPIs, win-back results and classification as text, then the four
report charts as pictures, once per ISO week."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.tasks import run_job
from models.database import Database
from services.clock import FrozenClock
from services.policy import Policy
from tests.services.outreach_helpers import STAFF_CHAT, Shop, local, shop

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def care(db: Database, policy: Policy, clock: FrozenClock) -> Shop:
    clock.set(local("2026-05-04 09:00"))
    return shop(db, policy, clock)


async def test_the_digest_goes_once_a_week_with_its_charts(care: Shop, clock: FrozenClock) -> None:
    ann = await care.customer("Ann")
    await care.buys(ann, "120", clock.now() - timedelta(days=2))
    await run_job(care.jobs, "segmentation")

    assert await care.jobs.digest.send() == 5
    assert await care.jobs.digest.send() == 0

    text, *charts = await care.messages("digest")
    assert text.dedupe_key == "digest:2026-W19" and text.chat_id == STAFF_CHAT
    assert "Weekly digest 2026-W19" in text.text and "Win-back" in text.text
    assert "Classification" in text.text and "ABC" in text.text
    assert [c.dedupe_key for c in charts] == [
        f"digest:2026-W19:{name}"
        for name in ("segments", "pareto", "satisfaction", "response_times")
    ]
    assert all(c.photo is not None and c.photo.startswith(PNG) for c in charts)
    clock.advance(timedelta(days=7))
    assert await care.jobs.digest.send() == 5
